// Hugging Face safetensors checkpoints: reading single-file and sharded checkpoints (memory-mapped)
// and writing them (for synthetic checkpoints and tests).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/error.hpp"

namespace qlm::safetensors {

/// Element types qlm reads from safetensors.
enum class SourceType : std::uint8_t { F32, F16, BF16 };

/// "F32", "F16", "BF16".
std::string_view to_string(SourceType t) noexcept;

/// One tensor of a checkpoint; `data` views the mapped shard.
struct Tensor {
  std::string name;
  SourceType dtype = SourceType::F32;
  std::vector<std::uint64_t> shape;
  std::span<const std::uint8_t> data;
  std::string file;  ///< the shard it lives in, for error messages

  std::uint64_t elements() const;
};

/// All tensors of a checkpoint directory (model.safetensors or model.safetensors.index.json).
class Checkpoint {
 public:
  /// Opens and validates every shard; errors name the file and the tensor.
  static Result<Checkpoint> open(const std::filesystem::path& dir);
  Checkpoint();
  ~Checkpoint();
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;

  const std::vector<Tensor>& tensors() const { return tensors_; }
  /// The tensor called `name`, or nullptr.
  const Tensor* find(std::string_view name) const;
  /// Human-readable description ("model.safetensors" or "3 shards").
  std::string description() const;

 private:
  std::vector<Tensor> tensors_;
  std::vector<std::shared_ptr<void>> shards_;  // keep the mappings alive
};

/// Converts a tensor's elements to f32 into `out` (exactly elements() floats).
void to_f32(const Tensor& t, std::span<float> out);

/// A tensor to write; `produce` fills its raw little-endian bytes.
struct TensorSpec {
  std::string name;
  SourceType dtype = SourceType::F32;
  std::vector<std::uint64_t> shape;
  std::function<void(std::span<std::uint8_t>)> produce;
};

/// Writes one safetensors file atomically, streaming tensor by tensor.
Result<void> write_file(const std::filesystem::path& path, std::span<const TensorSpec> tensors);

}  // namespace qlm::safetensors
