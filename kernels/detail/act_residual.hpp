// Internal: KernelTable::act_residual, what a first int8 pass of activations missed (the input of
// the second pass, docs/quantization.md "Activations"), one fused multiply-add per value so every
// ISA and the scalar twin agree to the bit. Internal linkage: each ISA's translation unit has its
// own copy, built with its own flags.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernel_table.hpp"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qlm::kernels {
namespace {

// Values [j, j + len) of block b, len <= 32, one lane width at a time and the rest one by one.
template <std::size_t W>
inline void residual_block(const float* x, const std::int8_t* q, float d, std::size_t len,
                           float* r) {
  std::size_t j = 0;
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    const __m512 vd = _mm512_set1_ps(d);
    for (; j + 16 <= len; j += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j));
      const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
      _mm512_storeu_ps(r + j, _mm512_fnmadd_ps(qf, vd, _mm512_loadu_ps(x + j)));
    }
  }
#endif
#if defined(__AVX2__)
  if constexpr (W == 8) {
    const __m256 vd = _mm256_set1_ps(d);
    for (; j + 8 <= len; j += 8) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + j));
      const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
      _mm256_storeu_ps(r + j, _mm256_fnmadd_ps(qf, vd, _mm256_loadu_ps(x + j)));
    }
  }
#endif
#if defined(__aarch64__)
  if constexpr (W == 4) {
    const float32x4_t vd = vdupq_n_f32(d);
    for (; j + 8 <= len; j += 8) {
      const int16x8_t h = vmovl_s8(vld1_s8(q + j));
      const float32x4_t lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
      const float32x4_t hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(h)));
      vst1q_f32(r + j, vfmsq_f32(vld1q_f32(x + j), lo, vd));  // x - q * d, rounded once
      vst1q_f32(r + j + 4, vfmsq_f32(vld1q_f32(x + j + 4), hi, vd));
    }
  }
#endif
  for (; j < len; ++j) r[j] = std::fma(-static_cast<float>(q[j]), d, x[j]);
}

/// KernelTable::act_residual for lane width W (16: AVX-512, 8: AVX2, 4: NEON; others scalar).
template <std::size_t W>
void act_residual(const float* x, const std::int8_t* q, const float* d, std::size_t n, float* r) {
  for (std::size_t b = 0; b * kActBlock < n; ++b) {
    const std::size_t at = b * kActBlock, len = n - at < kActBlock ? n - at : kActBlock;
    residual_block<W>(x + at, q + at, d[b], len, r + at);
  }
}

}  // namespace
}  // namespace qlm::kernels
