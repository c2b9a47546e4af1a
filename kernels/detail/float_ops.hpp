// Internal: fp32 helpers (rmsnorm, layernorm, softmax, silu_mul, gelu_mul, rope, add, dot, axpy)
// written once over xsimd and instantiated per ISA translation unit; internal linkage keeps the
// copies apart. table_with_float_ops adds the f16 conversions (half_ops.hpp), attention
// (attention_ops.hpp) and the float-weight GEMM (float_gemm.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "detail/act_residual.hpp"
#include "detail/attention_ops.hpp"
#include "detail/float_gemm.hpp"
#include "detail/half_ops.hpp"
#include "detail/tables.hpp"
#include "kernel_table.hpp"

namespace qlm::kernels {
namespace {

template <class A>
struct FloatOps {
  using B = xsimd::batch<float, A>;
  static constexpr std::size_t W = B::size;

  static float hmax(B v) {
    alignas(64) float t[W];
    v.store_aligned(t);
    float m = t[0];
    for (std::size_t i = 1; i < W; ++i) m = std::max(m, t[i]);
    return m;
  }

  // Two accumulators hide the FMA latency; the reduction order differs from the scalar twin only
  // by float reassociation (tests bound it by n * eps * sum |x*y|).
  static float dot(const float* a, const float* b, std::size_t n) {
    B acc0(0.0f), acc1(0.0f);
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
      acc1 = xsimd::fma(B::load_unaligned(a + i + W), B::load_unaligned(b + i + W), acc1);
    }
    for (; i + W <= n; i += W)
      acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
    float sum = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
  }

  static void rmsnorm(float* out, const float* x, const float* w, std::size_t n, float eps) {
    const float ss = dot(x, x, n);
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    const B vs(scale);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
      (B::load_unaligned(x + i) * vs * B::load_unaligned(w + i)).store_unaligned(out + i);
    }
    for (; i < n; ++i) out[i] = x[i] * scale * w[i];
  }

  static float sum(const float* x, std::size_t n) {
    B acc0(0.0f), acc1(0.0f);
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      acc0 += B::load_unaligned(x + i);
      acc1 += B::load_unaligned(x + i + W);
    }
    for (; i + W <= n; i += W) acc0 += B::load_unaligned(x + i);
    float s = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) s += x[i];
    return s;
  }

  // The scalar twin's two passes (mean, then the squared deviations), each vectorized as dot().
  static void layernorm(float* out, const float* x, const float* w, const float* b, std::size_t n,
                        float eps) {
    const float mean = sum(x, n) / static_cast<float>(n);
    const B vm(mean);
    B acc0(0.0f), acc1(0.0f);
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      const B d0 = B::load_unaligned(x + i) - vm, d1 = B::load_unaligned(x + i + W) - vm;
      acc0 = xsimd::fma(d0, d0, acc0);
      acc1 = xsimd::fma(d1, d1, acc1);
    }
    for (; i + W <= n; i += W) {
      const B d0 = B::load_unaligned(x + i) - vm;
      acc0 = xsimd::fma(d0, d0, acc0);
    }
    float var = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
    const float scale = 1.0f / std::sqrt(var / static_cast<float>(n) + eps);
    const B vs(scale);
    for (i = 0; i + W <= n; i += W) {
      const B y = (B::load_unaligned(x + i) - vm) * vs;
      xsimd::fma(y, B::load_unaligned(w + i), B::load_unaligned(b + i)).store_unaligned(out + i);
    }
    for (; i < n; ++i) out[i] = (x[i] - mean) * scale * w[i] + b[i];
  }

  static void softmax(float* x, std::size_t n) {
    std::size_t i = 0;
    float mx = x[0];
    if (n >= W) {
      B vm = B::load_unaligned(x);
      for (i = W; i + W <= n; i += W) vm = xsimd::max(vm, B::load_unaligned(x + i));
      mx = hmax(vm);
    }
    for (; i < n; ++i) mx = std::max(mx, x[i]);
    const B vmx(mx);
    B vsum(0.0f);
    for (i = 0; i + W <= n; i += W) {
      const B e = xsimd::exp(B::load_unaligned(x + i) - vmx);
      e.store_unaligned(x + i);
      vsum += e;
    }
    float sum = xsimd::hadd(vsum);
    for (; i < n; ++i) {
      x[i] = std::exp(x[i] - mx);
      sum += x[i];
    }
    const float inv = 1.0f / sum;
    const B vinv(inv);
    for (i = 0; i + W <= n; i += W) (B::load_unaligned(x + i) * vinv).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= inv;
  }

  static void silu_mul(float* gate, const float* up, std::size_t n) {
    const B one(1.0f);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
      const B g = B::load_unaligned(gate + i);
      (g / (one + xsimd::exp(-g)) * B::load_unaligned(up + i)).store_unaligned(gate + i);
    }
    for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }

  static void gelu_mul(float* gate, const float* up, std::size_t n) {
    constexpr float kMinus2SqrtTwoOverPi = -1.5957691216057308f, kCubic = 0.044715f;
    const B one(1.0f), k(kMinus2SqrtTwoOverPi), cubic(kCubic);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
      const B v = B::load_unaligned(gate + i);
      B g = v / (one + xsimd::exp(k * xsimd::fma(cubic * v * v, v, v)));
      if (up != nullptr) g *= B::load_unaligned(up + i);
      g.store_unaligned(gate + i);
    }
    for (; i < n; ++i) {
      const float v = gate[i];
      const float g = v / (1.0f + std::exp(kMinus2SqrtTwoOverPi * std::fma(kCubic * v * v, v, v)));
      gate[i] = up != nullptr ? g * up[i] : g;
    }
  }

  static void rope(float* x, const float* cos, const float* sin, std::size_t head_dim) {
    const std::size_t half = head_dim / 2;
    std::size_t i = 0;
    for (; i + W <= half; i += W) {
      const B x0 = B::load_unaligned(x + i), x1 = B::load_unaligned(x + i + half);
      const B c = B::load_unaligned(cos + i), s = B::load_unaligned(sin + i);
      (x0 * c - x1 * s).store_unaligned(x + i);
      (x1 * c + x0 * s).store_unaligned(x + i + half);
    }
    for (; i < half; ++i) {
      const float x0 = x[i], x1 = x[i + half];
      x[i] = x0 * cos[i] - x1 * sin[i];
      x[i + half] = x1 * cos[i] + x0 * sin[i];
    }
  }

  static void add(float* y, const float* x, std::size_t n) {
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
      (B::load_unaligned(y + i) + B::load_unaligned(x + i)).store_unaligned(y + i);
    }
    for (; i < n; ++i) y[i] += x[i];
  }

  static void axpy(float* y, float alpha, const float* x, std::size_t n) {
    const B va(alpha);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
      xsimd::fma(va, B::load_unaligned(x + i), B::load_unaligned(y + i)).store_unaligned(y + i);
    }
    for (; i < n; ++i) y[i] += alpha * x[i];
  }
};

/// The float-weight GEMM's vector width: 256 bits in the AVX-512 tables too. Decode is bound by
/// the weight stream, and on the AMD EPYC we measure on (512-bit ops split in two) the 256-bit
/// kernel decoded SmolLM2-135M in f16 1.2-1.3x faster; prefill GEMMs lost ~15% (bench/RESULTS.md,
/// session 16). One width per table, since a row's bits must not depend on the batch.
template <class A>
using FloatGemmArch = std::conditional_t<std::is_same_v<A, xsimd::avx512bw>, xsimd::avx2, A>;

#if defined(__aarch64__)
inline constexpr auto kFitScale = detail::fit_scale_neon;
inline constexpr auto kGptqUpdate = detail::gptq_update_neon;
#else
inline constexpr auto kFitScale = detail::fit_scale_x86;
inline constexpr auto kGptqUpdate = detail::gptq_update_x86;
#endif

/// A table whose fp32 helpers are FloatOps<A>, f16 conversions HalfOps (the translation unit's
/// conversion instructions), attention AttnOps<A> and the scale search of the architecture's lane
/// width (scale_search_lanes.hpp); the caller supplies what differs per ISA.
template <class A>
KernelTable table_with_float_ops(Isa isa, QuantizeRowsFn quantize, GemmFn q8, GemmFn q4,
                                 GemmFn q4nl, GemmFn q5) {
  using F = FloatOps<A>;
  return {isa,
          quantize,
          q8,
          q4,
          q4nl,
          q5,
          F::rmsnorm,
          F::softmax,
          F::silu_mul,
          F::rope,
          F::add,
          F::dot,
          F::axpy,
          HalfOps::f16_to_f32,
          HalfOps::f32_to_f16,
          AttnOps<A>::attn_block,
          FloatGemm<FloatGemmArch<A>>::gemm,
          F::gelu_mul,
          kFitScale,
          kGptqUpdate,
          F::layernorm,
          act_residual<FloatOps<A>::W>};
}

}  // namespace
}  // namespace qlm::kernels
