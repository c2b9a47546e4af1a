// The tensors a model of a given config must contain: names and shapes, one declarative list shared
// by the converter (validation) and the loader.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/eval/activation_observer.hpp"

namespace qlm {

/// One expected tensor: its Hugging Face name and logical shape (outermost first).
struct ExpectedTensor {
  std::string name;
  std::vector<std::uint64_t> shape;
  bool matrix = false;  ///< a 2-D weight the requested quantization applies to
};

/// Every tensor `config` needs, in file order. The LM head is listed only when not tied.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

/// Rows [row0, row0 + rows) of a fused Hugging Face tensor of `fused_rows` rows that hold an
/// expected tensor (phi3's qkv_proj holds q/k/v, its gate_up_proj gate then up).
struct TensorSource {
  std::string name;
  std::uint64_t row0 = 0, rows = 0, fused_rows = 0;
};

/// Where expected tensor `name` lives in the checkpoint when the family fuses it; nullopt when it
/// is stored under its own name. The .qlm file always holds the unfused tensors.
std::optional<TensorSource> fused_source(const ModelConfig& config, std::string_view name);

/// The norm before a layer's MLP: "post_attention_layernorm" in Llama's naming, while gemma3's
/// post_attention_layernorm follows attention and "pre_feedforward_layernorm" precedes the MLP.
const char* mlp_norm_name(const ModelConfig& config);

/// Whether `name` is a Gemma RMSNorm weight, which Hugging Face stores as w for a scale of 1 + w
/// (the converter stores 1 + w, so every family's norm multiplies by its stored weight).
bool gemma_norm(const ModelConfig& config, std::string_view name);

/// Name of a per-layer tensor, e.g. layer_tensor(3, "self_attn.q_proj.weight").
std::string layer_tensor(std::uint32_t layer, const char* suffix);

/// Rows [row0, row1) of a matrix stored in bands (docs/format.md): a matrix whose rows are not
/// all at one type has no tensor of its own name but one `name[row0:row1]` per band.
struct RowBand {
  std::uint64_t row0 = 0, row1 = 0;
};

/// The tensor name of a band, e.g. "model.embed_tokens.weight[256:512]".
std::string band_tensor(std::string_view matrix, RowBand band);

/// The band `tensor` names if it is a band of `matrix`; nullopt if it is not one (malformed
/// suffixes are not bands).
std::optional<RowBand> parse_band_tensor(std::string_view tensor, std::string_view matrix);

/// The weight matrices that read `input` at `layer` (the LM head is the embedding when tied).
std::vector<std::string> matrices_reading(const ModelConfig& config, MatrixInput input,
                                          std::uint32_t layer);

}  // namespace qlm
