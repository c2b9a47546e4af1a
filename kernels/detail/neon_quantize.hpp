// Internal: AArch64 activation quantization for the neon, neon-dotprod and neon-i8mm tables. One
// 32-value block at a time in eight q registers, with the scalar reference's d and 1/d (the same
// two IEEE operations) and round-half-even conversion (vcvtnq), so q, d and s match it bit for
// bit. Internal linkage keeps the differently-flagged copies apart.
#pragma once

#include <arm_neon.h>

#include "detail/act_block.hpp"
#include "kernel_table.hpp"

namespace qlm::kernels {
namespace {

// Eight clamped int32x4 (|q| <= 127) as 32 int8 at qb; exact narrowing.
inline void store_block(const int32x4_t (&qi)[8], std::int8_t* qb) {
  for (int h = 0; h < 2; ++h) {
    const int16x8_t lo = vcombine_s16(vmovn_s32(qi[4 * h]), vmovn_s32(qi[4 * h + 1]));
    const int16x8_t hi = vcombine_s16(vmovn_s32(qi[4 * h + 2]), vmovn_s32(qi[4 * h + 3]));
    vst1q_s8(qb + 16 * h, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
  }
}

void quantize_rows_neon(const float* x, std::size_t m, std::size_t k, std::size_t ldx,
                        std::int8_t* q, float* d, std::int32_t* s) {
  const std::size_t blocks = (k + kActBlock - 1) / kActBlock;
  const int32x4_t lo = vdupq_n_s32(-127), hi = vdupq_n_s32(127);
  for (std::size_t row = 0; row < m; ++row) {
    for (std::size_t b = 0; b < blocks; ++b) {
      float tail[kActBlock];
      const float* p = detail::act_block(x + row * ldx, k, b, tail);
      // fmaxnm ignores a NaN as the reference's std::max(amax, |x|) does.
      float32x4_t v[8], mx = vdupq_n_f32(0.0f);
      for (int i = 0; i < 8; ++i) {
        v[i] = vld1q_f32(p + 4 * i);
        mx = vmaxnmq_f32(mx, vabsq_f32(v[i]));
      }
      const float amax = vmaxnmvq_f32(mx);
      const auto [db, inv] = detail::act_scale(amax);
      int32x4_t qi[8], sum = vdupq_n_s32(0);
      for (int i = 0; i < 8; ++i) {
        qi[i] = vminq_s32(vmaxq_s32(vcvtnq_s32_f32(vmulq_n_f32(v[i], inv)), lo), hi);
        sum = vaddq_s32(sum, qi[i]);
      }
      store_block(qi, q + (row * blocks + b) * kActBlock);
      d[row * blocks + b] = db;
      s[row * blocks + b] = vaddvq_s32(sum);
    }
  }
}

}  // namespace
}  // namespace qlm::kernels
