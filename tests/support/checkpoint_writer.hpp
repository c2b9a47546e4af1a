// Writing Hugging Face style checkpoints for tests: re-encoded (F32/F16/BF16), optionally sharded,
// with tensors added, removed or edited, and config.json edits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/convert/safetensors.hpp"

namespace qlm::test {

/// A tensor held in memory as f32 values.
struct HostTensor {
  std::string name;
  std::vector<std::uint64_t> shape;
  std::vector<float> values;
};

/// Every tensor of a checkpoint directory converted to f32, in the checkpoint's order.
std::vector<HostTensor> load_tensors(const std::filesystem::path& dir);

/// Every tensor `config` needs (qlm::expected_tensors), each element `value`: a complete
/// checkpoint to break one tensor of.
std::vector<HostTensor> expected_host_tensors(const ModelConfig& config, float value);

/// The tensor called `name` (throws std::out_of_range if absent).
HostTensor& find_tensor(std::vector<HostTensor>& tensors, std::string_view name);

/// The value `x` becomes once stored as `type` (round to nearest even).
float round_to(safetensors::SourceType type, float x);

/// Raw little-endian bytes of `values` stored as `type`.
std::vector<std::uint8_t> encode_values(std::span<const float> values,
                                        safetensors::SourceType type);

/// Writes `tensors` into `dir` as model.safetensors (shards == 1) or as `shards` files plus
/// model.safetensors.index.json with a weight_map.
void write_tensors(const std::filesystem::path& dir, std::span<const HostTensor> tensors,
                   safetensors::SourceType type, int shards = 1);

/// Copies every file of `src` that is not a safetensors file or index (config, tokenizer).
void copy_aux_files(const std::filesystem::path& src, const std::filesystem::path& dst);

/// A full copy of the checkpoint `src` in `dst`, tensors re-encoded as `type` in `shards` files.
void write_checkpoint_copy(const std::filesystem::path& src, const std::filesystem::path& dst,
                           safetensors::SourceType type, int shards = 1);

/// Reads dir/config.json, lets `edit` change it, and writes it back.
void edit_config(const std::filesystem::path& dir,
                 const std::function<void(nlohmann::json&)>& edit);

/// `dir`/config.json copied from `config_json` (a real model's) and `edit`ed, with stories260K's
/// tokenizer files beside it when `tokenizer`; returns `dir`.
std::filesystem::path config_from(const std::filesystem::path& dir,
                                  const std::filesystem::path& config_json,
                                  const std::function<void(nlohmann::json&)>& edit = {},
                                  bool tokenizer = false);

}  // namespace qlm::test
