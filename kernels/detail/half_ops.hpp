// Internal: f16 <-> f32 conversion of runs (KernelTable::f16_to_f32 / f32_to_f16) with the
// conversion instructions of the translation unit's ISA: vcvtph2ps/vcvtps2ph (F16C, 8 lanes, or
// AVX-512F, 16 lanes) or fcvtl/fcvtn (AArch64, 8 lanes). Internal linkage keeps the copies apart.
//
// Bit-exactness with the scalar twins (qlm/detail/half.hpp): the hardware already rounds to
// nearest even, keeps infinities and converts subnormals exactly (MXCSR/FPCR at their defaults),
// but it quiets signalling NaNs (f16 -> f32) and keeps the top of a NaN's payload (f32 -> f16)
// where the scalar code keeps the payload exactly / writes sign | 0x7e00. A vector that holds a
// NaN is therefore converted by the scalar code; the test for it costs one compare per vector.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qlm/detail/half.hpp"

#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qlm::kernels {
namespace {

struct HalfOps {
  static void f16_to_f32_scalar(const std::uint16_t* x, float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] = qlm::detail::f16_to_f32(x[i]);
  }
  static void f32_to_f16_scalar(const float* x, std::uint16_t* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] = qlm::detail::f32_to_f16(x[i]);
  }

#if defined(__AVX512F__)
  static void f16_to_f32(const std::uint16_t* x, float* y, std::size_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7fff), inf = _mm512_set1_epi32(0x7c00);
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
      const __m512i w = _mm512_and_si512(_mm512_cvtepu16_epi32(h), abs_mask);
      if (_mm512_cmpgt_epi32_mask(w, inf) != 0) {
        f16_to_f32_scalar(x + i, y + i, 16);
      } else {
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(h));
      }
    }
    f16_to_f32_scalar(x + i, y + i, n - i);
  }

  static void f32_to_f16(const float* x, std::uint16_t* y, std::size_t n) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 f = _mm512_loadu_ps(x + i);
      if (_mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q) != 0) {
        f32_to_f16_scalar(x + i, y + i, 16);
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                            _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
    }
    f32_to_f16_scalar(x + i, y + i, n - i);
  }
#elif defined(__F16C__)
  static void f16_to_f32(const std::uint16_t* x, float* y, std::size_t n) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fff), inf = _mm256_set1_epi32(0x7c00);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
      const __m256i w = _mm256_and_si256(_mm256_cvtepu16_epi32(h), abs_mask);
      if (_mm256_movemask_epi8(_mm256_cmpgt_epi32(w, inf)) != 0) {
        f16_to_f32_scalar(x + i, y + i, 8);
      } else {
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
      }
    }
    f16_to_f32_scalar(x + i, y + i, n - i);
  }

  static void f32_to_f16(const float* x, std::uint16_t* y, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 f = _mm256_loadu_ps(x + i);
      if (_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q)) != 0) {
        f32_to_f16_scalar(x + i, y + i, 8);
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                         _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
    }
    f32_to_f16_scalar(x + i, y + i, n - i);
  }
#elif defined(__aarch64__)
  static void f16_to_f32(const std::uint16_t* x, float* y, std::size_t n) {
    const uint16x8_t abs_mask = vdupq_n_u16(0x7fff), inf = vdupq_n_u16(0x7c00);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const uint16x8_t h = vld1q_u16(x + i);
      if (vmaxvq_u16(vcgtq_u16(vandq_u16(h, abs_mask), inf)) != 0) {
        f16_to_f32_scalar(x + i, y + i, 8);
      } else {
        const float16x8_t hf = vreinterpretq_f16_u16(h);
        vst1q_f32(y + i, vcvt_f32_f16(vget_low_f16(hf)));
        vst1q_f32(y + i + 4, vcvt_high_f32_f16(hf));
      }
    }
    f16_to_f32_scalar(x + i, y + i, n - i);
  }

  static void f32_to_f16(const float* x, std::uint16_t* y, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
      if (vminvq_u32(vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b))) == 0) {
        f32_to_f16_scalar(x + i, y + i, 8);
      } else {
        vst1q_u16(y + i, vreinterpretq_u16_f16(vcvt_high_f16_f32(vcvt_f16_f32(a), b)));
      }
    }
    f32_to_f16_scalar(x + i, y + i, n - i);
  }
#else
  static void f16_to_f32(const std::uint16_t* x, float* y, std::size_t n) {
    f16_to_f32_scalar(x, y, n);
  }
  static void f32_to_f16(const float* x, std::uint16_t* y, std::size_t n) {
    f32_to_f16_scalar(x, y, n);
  }
#endif
};

}  // namespace
}  // namespace qlm::kernels
