// Internal: one vector of f16 or bf16 values loaded and widened to f32 in registers, with the
// translation unit's instructions (vcvtph2ps on F16C / AVX-512, fcvtl on AArch64; bf16 by an exact
// 16-bit shift), for the attention and float-weight kernels. f16 is exact except that a signalling
// NaN comes out quiet. Internal linkage keeps the per-ISA copies apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "qlm/detail/half.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qlm::kernels {
namespace {

template <class A>
struct Widen {
  using B = xsimd::batch<float, A>;
  static constexpr std::size_t W = B::size;

  static B f16(const std::uint16_t* p) {
#if defined(__AVX512F__)
    if constexpr (W == 16) {
      return B(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
    }
#endif
#if defined(__F16C__)
    if constexpr (W == 8) {
      return B(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    }
#elif defined(__aarch64__)
    if constexpr (W == 4) return B(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))));
#endif
    alignas(64) float t[W];
    for (std::size_t i = 0; i < W; ++i) t[i] = qlm::detail::f16_to_f32(p[i]);
    return B::load_aligned(t);
  }

  static B bf16(const std::uint16_t* p) {
#if defined(__AVX512F__)
    if constexpr (W == 16) {
      const __m512i w =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      return B(_mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
#endif
#if defined(__AVX2__)
    if constexpr (W == 8) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      return B(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
#elif defined(__aarch64__)
    if constexpr (W == 4) return B(vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)));
#endif
    alignas(64) float t[W];
    for (std::size_t i = 0; i < W; ++i) t[i] = qlm::detail::bf16_to_f32(p[i]);
    return B::load_aligned(t);
  }
};

}  // namespace
}  // namespace qlm::kernels
