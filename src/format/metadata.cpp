// Binary encoding of Metadata: u64 count, then per entry u16 key length, key, u8 type tag, payload.
#include "qlm/format/metadata.hpp"

#include "util/byte_io.hpp"

namespace qlm::format {
namespace {

using detail::ByteReader;
using detail::ByteWriter;
using detail::fail;

template <class T>
void put_value(ByteWriter& w, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    w.put<std::uint8_t>(v ? 1 : 0);
  } else if constexpr (std::is_arithmetic_v<T>) {
    w.put(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    w.put<std::uint64_t>(v.size());
    w.put_bytes(v);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    w.put<std::uint64_t>(v.size());
    for (const auto& s : v) {
      w.put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
      w.put_bytes(s);
    }
  } else {  // vector of arithmetic
    w.put<std::uint64_t>(v.size());
    for (auto x : v) w.put(x);
  }
}

// Reads `n` elements only after checking they fit in what remains, so a corrupt count can never
// trigger a huge allocation.
template <class E>
std::vector<E> get_array(ByteReader& r, std::string_view key, std::size_t min_elem_bytes) {
  const auto n = r.get<std::uint64_t>();
  if (n > r.remaining() / min_elem_bytes) {
    fail(ErrorCode::Format, "{}: metadata key '{}' claims {} elements but only {} bytes remain",
         r.file(), key, n, r.remaining());
  }
  std::vector<E> out;
  out.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<E, std::string>) {
      out.emplace_back(r.take_string(r.get<std::uint32_t>()));
    } else {
      out.push_back(r.get<E>());
    }
  }
  return out;
}

template <std::size_t I = 0>
MetaValue get_value(ByteReader& r, std::uint8_t tag, std::string_view key) {
  if constexpr (I < std::variant_size_v<MetaValue>) {
    if (tag != I) return get_value<I + 1>(r, tag, key);
    using T = std::variant_alternative_t<I, MetaValue>;
    if constexpr (std::is_same_v<T, bool>) {
      return MetaValue(std::in_place_index<I>, r.get<std::uint8_t>() != 0);
    } else if constexpr (std::is_arithmetic_v<T>) {
      return MetaValue(std::in_place_index<I>, r.get<T>());
    } else if constexpr (std::is_same_v<T, std::string>) {
      const auto n = r.get<std::uint64_t>();
      return MetaValue(std::in_place_index<I>, std::string(r.take_string(n)));
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      return MetaValue(std::in_place_index<I>, get_array<std::string>(r, key, 4));
    } else {
      using E = typename T::value_type;
      return MetaValue(std::in_place_index<I>, get_array<E>(r, key, sizeof(E)));
    }
  } else {
    fail(ErrorCode::Format, "{}: metadata key '{}' has unknown type tag {}", r.file(), key, tag);
  }
}

}  // namespace

Result<void> check_encodable(const Metadata& meta) {
  for (const auto& [key, value] : meta.entries()) {
    if (key.size() > 0xffff) {
      return Error{ErrorCode::InvalidArgument,
                   fmt::format("metadata key '{}…' is {} bytes (at most 65535)", key.substr(0, 40),
                               key.size())};
    }
    if (const auto* strings = std::get_if<std::vector<std::string>>(&value)) {
      for (const auto& s : *strings) {
        if (s.size() > 0xffffffffull) {
          return Error{ErrorCode::InvalidArgument,
                       fmt::format("metadata key '{}' holds a string over 4 GiB", key)};
        }
      }
    }
  }
  return {};
}

std::vector<std::uint8_t> encode_metadata(const Metadata& meta) {
  ByteWriter w;
  w.put<std::uint64_t>(meta.entries().size());
  for (const auto& [key, value] : meta.entries()) {
    w.put<std::uint16_t>(static_cast<std::uint16_t>(key.size()));
    w.put_bytes(key);
    w.put<std::uint8_t>(static_cast<std::uint8_t>(value.index()));
    std::visit([&](const auto& v) { put_value(w, v); }, value);
  }
  return std::move(w.bytes());
}

Result<Metadata> decode_metadata(std::span<const std::uint8_t> block, std::string_view file) {
  return detail::capture([&] {
    ByteReader r(block, file, "metadata block");
    Metadata meta;
    const auto count = r.get<std::uint64_t>();
    if (count > r.remaining() / 4) {
      fail(ErrorCode::Format, "{}: metadata claims {} entries in {} bytes", file, count,
           r.remaining());
    }
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string key(r.take_string(r.get<std::uint16_t>()));
      if (meta.contains(key))
        fail(ErrorCode::Format, "{}: metadata key '{}' appears twice", file, key);
      const auto tag = r.get<std::uint8_t>();
      MetaValue v = get_value(r, tag, key);
      meta.set(std::move(key), std::move(v));
    }
    if (r.remaining() != 0) {
      fail(ErrorCode::Format, "{}: {} unexpected bytes after the metadata entries", file,
           r.remaining());
    }
    return meta;
  });
}

}  // namespace qlm::format
