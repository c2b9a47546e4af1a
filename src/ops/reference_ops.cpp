// Out-of-line reference operators.
#include "ops/reference_ops.hpp"

#include <numbers>

#include "qlm/quant/quantize.hpp"

namespace qlm::ref {

void matvec(std::span<float> out, const detail::Matrix& w, std::span<const float> x,
            std::span<const float> bias) {
  std::vector<float> row(w.k);
  for (std::uint32_t r = 0; r < w.rows; ++r) {
    w.dequantize_row(r, row);
    float acc = 0.0f;
    for (std::uint32_t i = 0; i < w.k; ++i) acc += row[i] * x[i];
    out[r] = bias.empty() ? acc : acc + bias[r];
  }
}

// Mirrors Hugging Face's _compute_default_rope_parameters / _compute_llama3_parameters.
std::vector<float> rope_inv_freq(const ModelConfig& c, bool sliding_layer, std::uint32_t context) {
  const bool local = sliding_layer && local_rope(c);
  const float theta = local ? c.rope_local_theta : c.rope_theta;
  const std::uint32_t dim = c.rope_dim(), half = dim / 2;
  std::vector<float> f(half);
  const RopeScaling& s = c.rope_scaling;
  const bool longrope = !local && s.type == RopeScaling::Type::LongRope;
  const std::vector<float>& ext =
      context > s.original_max_position ? s.long_factor : s.short_factor;
  for (std::uint32_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    f[i] = 1.0f / ((longrope ? ext[i] : 1.0f) * std::pow(theta, exponent));
  }
  if (local) return f;
  if (c.rope_scaling.type == RopeScaling::Type::Linear) {
    for (float& freq : f) freq /= c.rope_scaling.factor;
  }
  if (s.type != RopeScaling::Type::Llama3) return f;
  const float old_ctx = static_cast<float>(s.original_max_position);
  const float low_wavelen = old_ctx / s.low_freq_factor;
  const float high_wavelen = old_ctx / s.high_freq_factor;
  for (float& freq : f) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / freq;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      freq /= s.factor;
    } else {
      const float smooth =
          (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      freq = (1.0f - smooth) * freq / s.factor + smooth * freq;
    }
  }
  return f;
}

}  // namespace qlm::ref
