// ModelConfig: names of architectures and the consistency checks every source of a config passes.
#include "qlm/config.hpp"

#include <algorithm>
#include <cmath>

#include "util/fail.hpp"

namespace qlm {

using detail::fail;

std::string_view to_string(Architecture a) noexcept {
  switch (a) {
    case Architecture::Llama:
      return "llama";
    case Architecture::Mistral:
      return "mistral";
    case Architecture::Qwen2:
      return "qwen2";
    case Architecture::Qwen3:
      return "qwen3";
    case Architecture::Starcoder2:
      return "starcoder2";
    case Architecture::Gemma3:
      return "gemma3_text";
    case Architecture::Phi3:
      return "phi3";
  }
  return "?";
}

std::optional<Architecture> parse_architecture(std::string_view name) noexcept {
  for (auto a :
       {Architecture::Llama, Architecture::Mistral, Architecture::Qwen2, Architecture::Qwen3,
        Architecture::Starcoder2, Architecture::Gemma3, Architecture::Phi3}) {
    if (to_string(a) == name) return a;
  }
  return std::nullopt;
}

float ModelConfig::attention_scale() const noexcept {
  const float base =
      query_pre_attn_scalar > 0.0f ? query_pre_attn_scalar : static_cast<float>(head_dim);
  return 1.0f / std::sqrt(base);
}

Result<void> ModelConfig::validate(std::string_view source) const {
  return detail::capture([&] {
    constexpr std::uint32_t kMaxDim = 1u << 20, kMaxVocab = 1u << 24, kMaxLayers = 1024;
    if (vocab_size == 0 || vocab_size > kMaxVocab || hidden_size == 0 || hidden_size > kMaxDim ||
        intermediate_size == 0 || intermediate_size > kMaxDim || n_layers == 0 ||
        n_layers > kMaxLayers || n_heads == 0 || n_heads > 4096 || head_dim == 0 ||
        head_dim > 4096 || n_kv_heads == 0) {
      fail(ErrorCode::Format,
           "{}: absurd or missing sizes (vocab {}, hidden {}, intermediate {}, layers {}, heads "
           "{}, kv heads {}, head_dim {})",
           source, vocab_size, hidden_size, intermediate_size, n_layers, n_heads, n_kv_heads,
           head_dim);
    }
    if (n_heads % n_kv_heads != 0) {
      fail(ErrorCode::Format, "{}: {} attention heads are not a multiple of {} kv heads", source,
           n_heads, n_kv_heads);
    }
    if (head_dim % 2 != 0) fail(ErrorCode::Format, "{}: head_dim {} is odd", source, head_dim);
    if (!(rope_theta > 0.0f) || !(rms_norm_eps > 0.0f) || !(rope_scaling.factor > 0.0f)) {
      fail(ErrorCode::Format, "{}: rope_theta {} / rms_norm_eps {} / rope factor {} must be > 0",
           source, rope_theta, rms_norm_eps, rope_scaling.factor);
    }
    if (!(query_pre_attn_scalar >= 0.0f) || !(rope_local_theta >= 0.0f)) {
      fail(ErrorCode::Format, "{}: query_pre_attn_scalar {} / rope_local_base_freq {} must be >= 0",
           source, query_pre_attn_scalar, rope_local_theta);
    }
    if (rotary_dim % 2 != 0 || rotary_dim > head_dim) {
      fail(ErrorCode::Format, "{}: rotary_dim {} must be even and at most head_dim {}", source,
           rotary_dim, head_dim);
    }
    if (rope_scaling.type == RopeScaling::Type::LongRope) {
      for (const auto* f : {&rope_scaling.short_factor, &rope_scaling.long_factor}) {
        if (f->size() != rope_dim() / 2 ||
            !std::all_of(f->begin(), f->end(), [](float v) { return v > 0.0f; })) {
          fail(ErrorCode::Format,
               "{}: longrope needs {} positive short and long factors (rotated dims / 2), got {}",
               source, rope_dim() / 2, f->size());
        }
      }
      if (!(rope_scaling.attention_factor > 0.0f)) {
        fail(ErrorCode::Format, "{}: longrope attention_factor must be > 0", source);
      }
    }
    if (rope_scaling.type == RopeScaling::Type::Llama3 &&
        !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor)) {
      fail(ErrorCode::Format, "{}: llama3 rope_scaling needs high_freq_factor > low_freq_factor",
           source);
    }
  });
}

}  // namespace qlm
