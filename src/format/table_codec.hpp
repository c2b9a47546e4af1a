// Encoding of the tensor table (shared by the writer and the reader so they cannot disagree).
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "qlm/format/tensor_info.hpp"

namespace qlm::format::detail {

/// Bytes of one encoded table entry.
std::size_t table_entry_size(const TensorInfo& t);
/// Appends the encoded table.
std::vector<std::uint8_t> encode_table(std::span<const TensorInfo> tensors);
/// Decodes and validates `count` entries against a data section of `data_size` bytes.
std::vector<TensorInfo> decode_table(std::span<const std::uint8_t> block, std::uint32_t count,
                                     std::uint64_t data_size, std::string_view file);

}  // namespace qlm::format::detail
