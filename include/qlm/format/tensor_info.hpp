// One entry of a .qlm tensor table: what a tensor is and where its bytes are.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qlm/format/dtype.hpp"

namespace qlm::format {

/// Name, type, shape (outermost first, as in Hugging Face) and location of a tensor.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;  ///< e.g. [out_features, in_features] for a linear weight
  std::uint64_t offset = 0;          ///< relative to the data section, multiple of 64
  std::uint64_t size = 0;            ///< bytes, == tensor_bytes(dtype, shape)
  std::uint64_t checksum = 0;        ///< XXH3-64 of the payload

  /// Number of logical elements.
  std::uint64_t elements() const {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

/// A tensor of a mapped file: its entry and its bytes (a view into the mapping, never a copy).
struct TensorView {
  const TensorInfo* info = nullptr;
  std::span<const std::uint8_t> data;
};

}  // namespace qlm::format
