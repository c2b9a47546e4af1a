// Little-endian byte writer and a bounds-checked reader for the binary parts of the file formats.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "util/fail.hpp"

namespace qlm::detail {

static_assert(std::endian::native == std::endian::little, "qlm supports little-endian hosts only");

/// Appends little-endian values to a byte vector.
class ByteWriter {
 public:
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    append(&v, sizeof(T));
  }
  void put_bytes(std::span<const std::uint8_t> b) { append(b.data(), b.size()); }
  void put_bytes(std::string_view s) { append(s.data(), s.size()); }
  std::vector<std::uint8_t>& bytes() { return bytes_; }

 private:
  // resize + memcpy rather than insert(): GCC 12 reports a false stringop-overflow on the latter.
  void append(const void* p, std::size_t n) {
    if (n == 0) return;
    const std::size_t at = bytes_.size();
    bytes_.resize(at + n);
    std::memcpy(bytes_.data() + at, p, n);
  }

  std::vector<std::uint8_t> bytes_;
};

/// Reads little-endian values from a span, failing with a Format error (naming `file` and `what`)
/// instead of reading past the end.
class ByteReader {
 public:
  ByteReader(std::span<const std::uint8_t> data, std::string_view file, std::string_view what)
      : data_(data), file_(file), what_(what) {}

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
    return v;
  }
  std::span<const std::uint8_t> take(std::uint64_t n) {
    if (n > data_.size() - pos_) {
      fail(ErrorCode::Format, "{}: {} is truncated (needs {} more bytes at offset {}, has {})",
           file_, what_, n, pos_, data_.size() - pos_);
    }
    auto s = data_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view take_string(std::uint64_t n) {
    auto s = take(n);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }
  std::size_t remaining() const { return data_.size() - pos_; }
  std::size_t position() const { return pos_; }
  std::string_view file() const { return file_; }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
  std::string_view file_, what_;
};

}  // namespace qlm::detail
