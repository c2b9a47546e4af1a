// The tensors a model of a given config must contain: names and shapes, one declarative list shared
// by the converter (validation) and the loader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qlm/activation_observer.hpp"
#include "qlm/config.hpp"

namespace qlm {

/// One expected tensor: its Hugging Face name and logical shape (outermost first).
struct ExpectedTensor {
  std::string name;
  std::vector<std::uint64_t> shape;
  bool matrix = false;  ///< a 2-D weight the requested quantization applies to
};

/// Every tensor `config` needs, in file order. The LM head is listed only when not tied.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

/// Name of a per-layer tensor, e.g. layer_tensor(3, "self_attn.q_proj.weight").
std::string layer_tensor(std::uint32_t layer, const char* suffix);

/// The weight matrices that read `input` at `layer` (the LM head is the embedding when tied).
std::vector<std::string> matrices_reading(const ModelConfig& config, MatrixInput input,
                                          std::uint32_t layer);

}  // namespace qlm
