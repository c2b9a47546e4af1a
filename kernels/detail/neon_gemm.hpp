// Internal: AArch64 GEMV/GEMM shared by the neon, neon-dotprod and neon-i8mm translation units. A
// 16-row tile is read as four 4-row quads (16 bytes of every 64-byte K group); only the 4-byte dot
// product differs per ISA. Internal linkage keeps the differently-flagged copies apart. Q4NL and Q5
// nibbles are decoded by one tbl into int8 levels (level + 128 for usdot; Q5 then adds its fifth
// bit), then Q8's arithmetic.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "detail/gemm_driver.hpp"
#include "detail/weight_format.hpp"
#include "kernel_table.hpp"

namespace qlm::kernels {
namespace {

using detail::Geometry;

constexpr std::size_t kQuad = kRowGroup / 4;  // rows of a quad

enum class NeonDot { Base, Dotprod, I8mm };

// 4 rows x 32 K of one tile: w[i] holds K 4i..4i+3 for the quad's 4 rows (one row per lane).
// Q8, Q4NL and Q5 under Base/Dotprod are held signed (u ^ 0x80 = q, or the level), which makes the
// zero point vanish; under I8mm they are unsigned (u, or level + 128) for usdot.
struct QuadTile {
  uint8x16_t w[8];
  float32x4_t dw;
};

template <DType F, NeonDot D>
inline void load_quad(const std::uint8_t* qt, const std::uint8_t* st, std::size_t v, QuadTile& t) {
  if constexpr (F == DType::Q8) {
    for (int i = 0; i < 8; ++i) {
      const uint8x16_t u = vld1q_u8(qt + 64 * i + 16 * v);
      t.w[i] = D == NeonDot::I8mm ? u : veorq_u8(u, vdupq_n_u8(0x80));
    }
  } else if constexpr (F == DType::Q4) {
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t u = vld1q_u8(qt + 64 * c + 16 * v);
      t.w[2 * c] = vandq_u8(u, vdupq_n_u8(0x0f));
      t.w[2 * c + 1] = vshrq_n_u8(u, 4);
    }
  } else {
    constexpr bool q5 = F == DType::Q5;
    const uint8x16_t lut =
        D == NeonDot::I8mm ? vld1q_u8(q5 ? detail::kQ5Biased.data() : detail::kQ4nlBiased.data())
                           : vreinterpretq_u8_s8(vld1q_s8(q5 ? detail::kQ5Signed.data()
                                                             : detail::kQ4nlSigned.data()));
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t u = vld1q_u8(qt + 64 * c + 16 * v);
      t.w[2 * c] = vqtbl1q_u8(lut, vandq_u8(u, vdupq_n_u8(0x0f)));
      t.w[2 * c + 1] = vqtbl1q_u8(lut, vshrq_n_u8(u, 4));
    }
    if constexpr (q5) {
      // Lane i's fifth bits: vtst gives 0xff where set; + 16 wraps correctly for either bias.
      const uint8x16_t fifth = vld1q_u8(qt + detail::kQ5Bits + 16 * v);
      for (int i = 0; i < 8; ++i) {
        const uint8x16_t set = vtstq_u8(fifth, vdupq_n_u8(static_cast<std::uint8_t>(1u << i)));
        t.w[i] = vaddq_u8(t.w[i], vandq_u8(set, vdupq_n_u8(16)));
      }
    }
  }
  std::uint16_t h[kQuad];
  std::memcpy(h, st + sizeof(h) * v, sizeof(h));
  t.dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

// Exact int32 per row of the quad: sum_i w*a (minus zp*s where w is unsigned).
template <DType F, NeonDot D>
inline int32x4_t quad_dot(const QuadTile& t, const std::int8_t* a, std::int32_t s) {
  [[maybe_unused]] const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
  const std::int32_t zps =
      (detail::int8_codes(F) && D != NeonDot::I8mm) ? 0 : detail::zero_point(F) * s;
  int32x4_t acc = vdupq_n_s32(-zps);
  if constexpr (D == NeonDot::I8mm) {
#if defined(__ARM_FEATURE_MATMUL_INT8)
    acc = vusdotq_laneq_s32(acc, t.w[0], a0, 0);
    acc = vusdotq_laneq_s32(acc, t.w[1], a0, 1);
    acc = vusdotq_laneq_s32(acc, t.w[2], a0, 2);
    acc = vusdotq_laneq_s32(acc, t.w[3], a0, 3);
    acc = vusdotq_laneq_s32(acc, t.w[4], a1, 0);
    acc = vusdotq_laneq_s32(acc, t.w[5], a1, 1);
    acc = vusdotq_laneq_s32(acc, t.w[6], a1, 2);
    acc = vusdotq_laneq_s32(acc, t.w[7], a1, 3);
#endif
  } else if constexpr (D == NeonDot::Dotprod) {
#if defined(__ARM_FEATURE_DOTPROD)
    // Q8/Q4NL weights are signed here and Q4 nibbles (0..15) are valid int8: sdot is exact.
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[0]), a0, 0);
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[1]), a0, 1);
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[2]), a0, 2);
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[3]), a0, 3);
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[4]), a1, 0);
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[5]), a1, 1);
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[6]), a1, 2);
    acc = vdotq_laneq_s32(acc, vreinterpretq_s8_u8(t.w[7]), a1, 3);
#endif
  } else {
    // No dot product: int8 x int8 products fit int16 (127 * 127); widen pairwise to int32 and
    // fold the two halves of each row's 4 products with one pairwise add.
    for (int i = 0; i < 8; ++i) {
      std::int32_t a4;
      std::memcpy(&a4, a + 4 * i, 4);
      const int8x8_t ap = vreinterpret_s8_s32(vdup_n_s32(a4));
      const int8x16_t w = vreinterpretq_s8_u8(t.w[i]);
      const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), ap));
      const int32x4_t hi = vpaddlq_s16(vmull_s8(vget_high_s8(w), ap));
      acc = vaddq_s32(acc, vpaddq_s32(lo, hi));
    }
  }
  return acc;
}

inline void store_quad(float* y, float32x4_t v, std::size_t row0, std::size_t n) {
  if (row0 + kQuad <= n) {
    vst1q_f32(y + row0, v);
  } else if (row0 < n) {
    float t[kQuad];
    vst1q_f32(t, v);
    for (std::size_t r = row0; r < n; ++r) y[r] = t[r - row0];
  }
}

// One quad of group g against activation rows m0..m0+MR-1; blocks in order into one float per
// (row, activation row), exactly as the other ISAs (MR = 1 is the GEMV path).
template <DType F, NeonDot D, int MR>
void micro(const std::uint8_t* w, const Geometry& geo, const QuantizedRows& a, std::size_t m0,
           float* y, std::size_t ldy, std::size_t g, std::size_t v) {
  const std::uint8_t* qt = w + g * geo.blocks * geo.tile;
  const std::uint8_t* st = w + geo.scales + g * geo.blocks * kTileScaleBytes;
  const std::size_t stride = geo.blocks * kActBlock;
  float32x4_t acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = vdupq_n_f32(0.0f);
  for (std::size_t b = 0; b < geo.blocks; ++b) {
    QuadTile t;
    load_quad<F, D>(qt + b * geo.tile, st + b * kTileScaleBytes, v, t);
    for (int r = 0; r < MR; ++r) {
      const std::size_t ab = (m0 + r) * geo.blocks + b;
      const int32x4_t isum = quad_dot<F, D>(t, a.q + (m0 + r) * stride + b * kActBlock, a.s[ab]);
      acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(isum), vmulq_n_f32(t.dw, a.d[ab]));
    }
  }
  for (int r = 0; r < MR; ++r) {
    store_quad(y + (m0 + r) * ldy, acc[r], g * kRowGroup + v * kQuad, geo.n);
  }
}

// The micro-kernel policy of the shared GEMM loop (detail/gemm_driver.hpp): no panel, K whole, one
// call per quad of a group (kMr = 1 is the GEMV).
template <DType F, NeonDot D>
struct NeonMicro {
  static constexpr int kMr = 4;
  static constexpr std::size_t kParts = kRowGroup / kQuad, kKChunk = 0;

  const std::uint8_t* w;
  const Geometry& geo;
  const QuantizedRows& a;
  float* y;
  std::size_t ldy;

  template <int MR>
  QLM_KERNEL_INLINE void micro(std::size_t m0, std::size_t /*b0*/, std::size_t /*nb*/,
                               std::size_t g, std::size_t v) const {
    kernels::micro<F, D, MR>(w, geo, a, m0, y, ldy, g, v);
  }
};

template <DType F, NeonDot D>
void gemm(const std::uint8_t* w, std::size_t n, std::size_t k, const QuantizedRows& a, float* y,
          std::size_t ldy, std::size_t g0, std::size_t g1) {
  const Geometry geo(F, n, k);
  g1 = std::min(g1, geo.groups);
  // Cache blocking as on x86: a chunk of row groups (~256 KiB of weights) stays in L2 while every
  // activation row passes; without it a prompt of m rows streamed each matrix from DRAM m/4 times.
  NeonMicro<F, D> kernel{w, geo, a, y, ldy};
  gemm_blocked(kernel, geo, a.rows, g0, g1);
}

}  // namespace
}  // namespace qlm::kernels
