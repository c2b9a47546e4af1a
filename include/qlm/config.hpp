// ModelConfig: every hyper-parameter the forward pass needs (read from a Hugging Face config.json
// by qlm/convert/hf_config.hpp, stored in a .qlm file by qlm/format/model_config.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "qlm/error.hpp"

namespace qlm {

/// Decoder families qlm runs; they share one graph and differ in the flags below.
enum class Architecture : std::uint8_t { Llama, Mistral, Qwen2, Qwen3, Starcoder2 };

/// "llama", "mistral", "qwen2", "qwen3" or "starcoder2".
std::string_view to_string(Architecture a) noexcept;
/// The architecture to_string() names; nullopt otherwise.
std::optional<Architecture> parse_architecture(std::string_view name) noexcept;

/// Rotary-embedding frequency scaling (Hugging Face `rope_scaling`).
struct RopeScaling {
  enum class Type : std::uint8_t { None, Llama3 } type = Type::None;
  float factor = 1.0f;                         ///< llama3: overall wavelength stretch
  float low_freq_factor = 1.0f;                ///< llama3
  float high_freq_factor = 4.0f;               ///< llama3
  std::uint32_t original_max_position = 8192;  ///< llama3: original context length
};

/// Hyper-parameters of a decoder-only transformer.
struct ModelConfig {
  Architecture arch = Architecture::Llama;
  std::uint32_t vocab_size = 0;
  std::uint32_t hidden_size = 0;        ///< model width (d_model)
  std::uint32_t intermediate_size = 0;  ///< SwiGLU hidden width
  std::uint32_t n_layers = 0;
  std::uint32_t n_heads = 0;     ///< query heads
  std::uint32_t n_kv_heads = 0;  ///< key/value heads (GQA when < n_heads)
  std::uint32_t head_dim = 0;    ///< may differ from hidden_size / n_heads (qwen3: explicit)
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  float rms_norm_eps = 1e-5f;
  bool tie_word_embeddings = false;           ///< LM head shares the token embedding matrix
  bool attention_bias = false;                ///< q/k/v projections carry biases (qwen2)
  std::uint32_t sliding_window = 0;           ///< attention window in tokens; 0 = full attention
  std::uint32_t max_position_embeddings = 0;  ///< trained context length
  std::int32_t bos_id = -1;                   ///< -1 when unknown
  std::int32_t eos_id = -1;                   ///< -1 when unknown

  /// Whether each head's queries and keys go through an RMSNorm of head_dim weights before RoPE
  /// (qwen3's q_norm / k_norm).
  bool qk_norm() const noexcept { return arch == Architecture::Qwen3; }
  /// starcoder2: LayerNorms with weight and bias (eps in rms_norm_eps, read from norm_epsilon), a
  /// non-gated GELU-tanh MLP (c_fc -> gelu -> c_proj), and when attention_bias (use_bias) biases
  /// on o_proj, c_fc and c_proj as well as q/k/v.
  bool layer_norm() const noexcept { return arch == Architecture::Starcoder2; }
  bool gated_mlp() const noexcept { return arch != Architecture::Starcoder2; }
  bool output_biases() const noexcept { return arch == Architecture::Starcoder2 && attention_bias; }

  /// Checks internal consistency (head_dim * n_heads, divisibility, absurd sizes); `source` names
  /// the file in the error.
  Result<void> validate(std::string_view source) const;
};

}  // namespace qlm
