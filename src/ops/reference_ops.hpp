// Scalar fp32 reference operators of the Llama-family graph, written to be obviously right: the
// fast paths are tested against these.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "model_weights.hpp"
#include "qlm/config.hpp"

namespace qlm::ref {

/// out = x / sqrt(mean(x^2) + eps) * w.
inline void rmsnorm(std::span<float> out, std::span<const float> x, std::span<const float> w,
                    float eps) {
  float ss = 0.0f;
  for (float v : x) ss += v * v;
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(x.size()) + eps);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * scale * w[i];
}

/// LayerNorm: out = (x - mean) / sqrt(var + eps) * w + b, var the biased variance (starcoder2).
inline void layernorm(std::span<float> out, std::span<const float> x, std::span<const float> w,
                      std::span<const float> b, float eps) {
  const auto n = static_cast<float>(x.size());
  float sum = 0.0f;
  for (float v : x) sum += v;
  const float mean = sum / n;
  float var = 0.0f;
  for (float v : x) var += (v - mean) * (v - mean);
  const float scale = 1.0f / std::sqrt(var / n + eps);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - mean) * scale * w[i] + b[i];
}

/// GELU, tanh approximation (PyTorch's approximate="tanh", HF's gelu_pytorch_tanh), in place.
inline void gelu_tanh(std::span<float> x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (float& v : x) v = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
}

/// out[r] = dot(row r of W, x) (+ bias[r]), dequantizing each row on the fly.
void matvec(std::span<float> out, const detail::Matrix& w, std::span<const float> x,
            std::span<const float> bias = {});

/// Rotary inverse frequencies (rope_dim / 2 values), with llama3, linear or longrope scaling when
/// configured; longrope takes its long factors when `context` exceeds the original context
/// (llama.cpp's rule: chosen once per session, not per position). `sliding_layer`: those of a
/// sliding-window layer, which has its own base (rope_local_theta) and no scaling when the config
/// sets one (gemma3).
std::vector<float> rope_inv_freq(const ModelConfig& config, bool sliding_layer = false,
                                 std::uint32_t context = 0);

/// The factor cos and sin are scaled by (longrope's attention factor; 1 otherwise).
inline float rope_mscale(const ModelConfig& c) {
  return c.rope_scaling.type == RopeScaling::Type::LongRope ? c.rope_scaling.attention_factor
                                                            : 1.0f;
}

/// Whether sliding-window layers rotate by other frequencies than global ones.
inline bool local_rope(const ModelConfig& c) {
  return c.rope_local_theta > 0.0f;
}

/// Rotates the rope_dim leading values of one head (`head`) in place at `pos`, Hugging Face
/// rotate-half order (pairs i and i + d/2), cos and sin scaled by `mscale`.
inline void rope(std::span<float> head, std::span<const float> inv_freq, std::uint32_t pos,
                 float mscale = 1.0f) {
  const std::size_t half = head.size() / 2;
  for (std::size_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    const float c = std::cos(angle) * mscale, s = std::sin(angle) * mscale;
    const float x0 = head[i], x1 = head[i + half];
    head[i] = x0 * c - x1 * s;
    head[i + half] = x1 * c + x0 * s;
  }
}

/// In-place softmax.
inline void softmax(std::span<float> x) {
  float max = x[0];
  for (float v : x) max = std::max(max, v);
  float sum = 0.0f;
  for (float& v : x) {
    v = std::exp(v - max);
    sum += v;
  }
  for (float& v : x) v /= sum;
}

/// GeGLU (gemma3): gate = gelu_tanh(gate) * up.
inline void gelu_tanh_mul(std::span<float> gate, std::span<const float> up) {
  gelu_tanh(gate);
  for (std::size_t i = 0; i < gate.size(); ++i) gate[i] *= up[i];
}

/// SwiGLU: gate = silu(gate) * up.
inline void silu_mul(std::span<float> gate, std::span<const float> up) {
  for (std::size_t i = 0; i < gate.size(); ++i) {
    gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }
}

}  // namespace qlm::ref
