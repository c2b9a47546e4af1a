// ModelConfig: every hyper-parameter the forward pass needs (read from a Hugging Face config.json
// by qlm/convert/hf_config.hpp, stored in a .qlm file by qlm/format/model_config.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "qlm/error.hpp"

namespace qlm {

/// Decoder families qlm runs; they share one graph and differ in the flags below.
enum class Architecture : std::uint8_t { Llama, Mistral, Qwen2, Qwen3, Starcoder2, Gemma3, Phi3 };

/// "llama", "mistral", "qwen2", "qwen3", "starcoder2", "gemma3_text" or "phi3".
std::string_view to_string(Architecture a) noexcept;
/// The architecture to_string() names; nullopt otherwise.
std::optional<Architecture> parse_architecture(std::string_view name) noexcept;

/// Rotary-embedding frequency scaling (Hugging Face `rope_scaling`).
struct RopeScaling {
  enum class Type : std::uint8_t { None, Llama3, Linear, LongRope } type = Type::None;
  float factor = 1.0f;  ///< llama3: overall wavelength stretch; linear: every frequency / factor
  float low_freq_factor = 1.0f;                ///< llama3
  float high_freq_factor = 4.0f;               ///< llama3
  std::uint32_t original_max_position = 8192;  ///< llama3, longrope: original context length
  /// longrope (Phi-3): per-frequency divisors (rope_dim / 2 each) for contexts up to
  /// original_max_position (short) and beyond (long), and the factor cos and sin are scaled by.
  std::vector<float> short_factor, long_factor;
  float attention_factor = 1.0f;
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
  /// Attention scores are scaled by 1/sqrt(this); 0 means head_dim (gemma3: query_pre_attn_scalar).
  float query_pre_attn_scalar = 0.0f;
  /// RoPE base of the sliding-window layers, which take no rope_scaling; 0 = those layers use
  /// rope_theta and rope_scaling like the others (gemma3: rope_local_base_freq).
  float rope_local_theta = 0.0f;
  /// 0: every layer uses sliding_window (Mistral, StarCoder2). N > 0: layer l is global (full
  /// attention) when (l + 1) % N == 0 and sliding otherwise (gemma3's sliding_window_pattern).
  std::uint32_t sliding_window_pattern = 0;
  /// Leading dimensions of each head that RoPE rotates; 0 = all of head_dim (phi3:
  /// head_dim * partial_rotary_factor).
  std::uint32_t rotary_dim = 0;

  /// Dimensions RoPE rotates per head.
  std::uint32_t rope_dim() const noexcept { return rotary_dim ? rotary_dim : head_dim; }

  /// Whether layer `l` attends through the sliding window only.
  bool sliding(std::uint32_t l) const noexcept {
    return sliding_window != 0 &&
           (sliding_window_pattern == 0 || (l + 1) % sliding_window_pattern != 0);
  }
  /// Layer l's window in tokens (0 = the whole context).
  std::uint32_t window(std::uint32_t l) const noexcept { return sliding(l) ? sliding_window : 0; }
  /// Attention score scale 1/sqrt(query_pre_attn_scalar or head_dim).
  float attention_scale() const noexcept;

  /// Whether each head's queries and keys go through an RMSNorm of head_dim weights before RoPE
  /// (qwen3's q_norm / k_norm).
  bool qk_norm() const noexcept {
    return arch == Architecture::Qwen3 || arch == Architecture::Gemma3;
  }
  /// gemma3: token embeddings times sqrt(hidden_size); RMSNorm weights stored as 1 + w (the
  /// converter adds Gemma's offset); norms after attention and after the MLP as well as before
  /// (sandwich norms); a GELU-tanh gated MLP.
  bool gemma() const noexcept { return arch == Architecture::Gemma3; }
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
