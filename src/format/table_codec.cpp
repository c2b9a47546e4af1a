// Tensor table entries: u16 name length, name, u8 dtype, u8 rank, u64 shape[rank], u64 offset,
// u64 size, u64 checksum. Decoding checks every field against the file before anything trusts it.
#include "format/table_codec.hpp"

#include <algorithm>
#include <unordered_set>

#include "qlm/format/header.hpp"
#include "util/byte_io.hpp"

namespace qlm::format::detail {

using qlm::detail::ByteReader;
using qlm::detail::ByteWriter;
using qlm::detail::fail;

std::size_t table_entry_size(const TensorInfo& t) {
  return 2 + t.name.size() + 2 + 8 * t.shape.size() + 24;
}

std::vector<std::uint8_t> encode_table(std::span<const TensorInfo> tensors) {
  ByteWriter w;
  for (const auto& t : tensors) {
    w.put<std::uint16_t>(static_cast<std::uint16_t>(t.name.size()));
    w.put_bytes(t.name);
    w.put<std::uint8_t>(static_cast<std::uint8_t>(t.dtype));
    w.put<std::uint8_t>(static_cast<std::uint8_t>(t.shape.size()));
    for (auto d : t.shape) w.put<std::uint64_t>(d);
    w.put<std::uint64_t>(t.offset);
    w.put<std::uint64_t>(t.size);
    w.put<std::uint64_t>(t.checksum);
  }
  return std::move(w.bytes());
}

namespace {

TensorInfo decode_entry(ByteReader& r, std::uint64_t data_size, std::string_view file) {
  TensorInfo t;
  t.name = std::string(r.take_string(r.get<std::uint16_t>()));
  if (t.name.empty()) fail(ErrorCode::Format, "{}: tensor table has an entry with no name", file);
  const auto dtype = r.get<std::uint8_t>();
  if (dtype > static_cast<std::uint8_t>(DType::Q5)) {
    fail(ErrorCode::Format, "{}: tensor '{}' has unknown dtype {}", file, t.name, dtype);
  }
  t.dtype = static_cast<DType>(dtype);
  const auto rank = r.get<std::uint8_t>();
  if (rank < 1 || rank > 4) {
    fail(ErrorCode::Format, "{}: tensor '{}' has rank {} (must be 1..4)", file, t.name, rank);
  }
  for (int i = 0; i < rank; ++i) t.shape.push_back(r.get<std::uint64_t>());
  t.offset = r.get<std::uint64_t>();
  t.size = r.get<std::uint64_t>();
  t.checksum = r.get<std::uint64_t>();
  const auto expected = tensor_bytes(t.dtype, t.shape);
  if (!expected) {
    fail(ErrorCode::Format, "{}: tensor '{}' has a shape invalid for type {}", file, t.name,
         to_string(t.dtype));
  }
  if (*expected != t.size) {
    fail(ErrorCode::Format, "{}: tensor '{}' claims {} bytes but its {} shape needs {}", file,
         t.name, t.size, to_string(t.dtype), *expected);
  }
  if (t.offset % kTensorAlignment != 0) {
    fail(ErrorCode::Format, "{}: tensor '{}' offset {} is not {}-byte aligned", file, t.name,
         t.offset, kTensorAlignment);
  }
  if (t.offset > data_size || t.size > data_size - t.offset) {
    fail(ErrorCode::Format,
         "{}: tensor '{}' spans bytes [{}, {}) of a data section of {} bytes (file truncated?)",
         file, t.name, t.offset, t.offset + t.size, data_size);
  }
  return t;
}

}  // namespace

std::vector<TensorInfo> decode_table(std::span<const std::uint8_t> block, std::uint32_t count,
                                     std::uint64_t data_size, std::string_view file) {
  ByteReader r(block, file, "tensor table");
  // Each entry needs at least 36 bytes: this bounds the allocation by the table's real size.
  if (count > block.size() / 36) {
    fail(ErrorCode::Format, "{}: header claims {} tensors but the table has {} bytes", file, count,
         block.size());
  }
  std::vector<TensorInfo> tensors;
  tensors.reserve(count);
  std::unordered_set<std::string_view> names;
  for (std::uint32_t i = 0; i < count; ++i) tensors.push_back(decode_entry(r, data_size, file));
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) {
      fail(ErrorCode::Format, "{}: tensor '{}' appears twice in the table", file, t.name);
    }
  }
  if (r.remaining() != 0) {
    fail(ErrorCode::Format, "{}: {} unexpected bytes after the tensor table", file, r.remaining());
  }
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    if (prev->offset + prev->size > by_offset[i]->offset) {
      fail(ErrorCode::Format, "{}: tensors '{}' and '{}' overlap", file, prev->name,
           by_offset[i]->name);
    }
  }
  return tensors;
}

}  // namespace qlm::format::detail
