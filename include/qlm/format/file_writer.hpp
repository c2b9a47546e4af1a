// Writes a .qlm file atomically: into a temporary sibling, renamed over the target only when
// complete and flushed, so a failure never leaves a partial file or clobbers a good one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "qlm/error.hpp"
#include "qlm/format/metadata.hpp"
#include "qlm/format/tensor_info.hpp"

namespace qlm::format {

/// A tensor to write: its description and a producer that fills its payload on demand (so a
/// converter never holds more than one converted tensor in memory).
struct PendingTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
  /// Fills `out` (exactly tensor_bytes(dtype, shape) bytes); may fail by returning an Error.
  std::function<Result<void>(std::span<std::uint8_t> out)> produce;
};

/// Called after each tensor is written with (tensors done, total tensors, bytes written so far);
/// returning false cancels the write (a Cancelled error; nothing is left on disk).
using ProgressFn = std::function<bool(std::size_t, std::size_t, std::uint64_t)>;

/// Writes metadata and tensors to `path` atomically. Tensor names must be unique.
Result<std::uint64_t> write_qlm_file(const std::filesystem::path& path, const Metadata& meta,
                                     std::span<const PendingTensor> tensors,
                                     const ProgressFn& progress = {});

}  // namespace qlm::format
