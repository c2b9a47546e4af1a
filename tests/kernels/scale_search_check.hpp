// Self-contained check of KernelTable::fit_scale against its scalar twin, shared by the Catch2
// tests and the NEON driver under qemu: every ISA must choose the same f16 scale, bit for bit, on
// blocks built to be awkward (ties, clipping, f16 overflow, tiny and subnormal extremes that take
// the reference path, zero weights, padding).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernel_check.hpp"

namespace qlm::kernels::check {

// One block of 32 values and weights of `kind` (0..kScaleBlockKinds-1), drawn from `rng`.
inline constexpr int kScaleBlockKinds = 12;
inline void make_scale_block(int kind, std::mt19937& rng, float* x, float* w) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const float scales[] = {1e-3f, 0.02f, 1.0f, 300.0f};
  const float s = scales[rng() % 4];
  for (int i = 0; i < 32; ++i) {
    float v = normal(rng) * s;
    switch (kind) {
      case 1:  // heavy tails
        v = v * v * v / (s * s);
        break;
      case 2:  // one outlier
        v = i == static_cast<int>(rng() % 32) ? 40.0f * s : v;
        break;
      case 3:  // half-way between levels of round to nearest's grid: ties to even
        v = (std::floor(normal(rng) * 4.0f) + 0.5f) * s;
        break;
      case 4:  // padding: trailing zeros with zero weight
        v = i < 13 ? v : 0.0f;
        break;
      case 5:  // all the same sign
        v = std::fabs(v);
        break;
      case 6:  // tiny: the reference path (extreme below kTinyMax), some subnormal
        v *= 1e-36f;
        break;
      case 7:  // huge: round to nearest and candidates overflow f16
        v *= 1e33f;
        break;
      case 8:  // a single non-zero value
        v = i == 5 ? v : 0.0f;
        break;
      case 9:  // all zero
        v = 0.0f;
        break;
      case 10:  // two magnitudes only
        v = (i % 2 ? 1.0f : -3.0f) * s;
        break;
      default:
        break;
    }
    x[i] = v;
    const int wk = static_cast<int>(rng() % 4);
    w[i] = wk == 0 ? 1.0f : wk == 1 ? 4.0f * unit(rng) : wk == 2 ? 0.0f : 1e6f * unit(rng);
    if (kind == 4 && i >= 13) w[i] = 0.0f;
  }
}

// `blocks` per type, cycling through the kinds (the NEON driver under qemu takes fewer).
inline Report check_fit_scale(const KernelTable& t, const KernelTable& ref, int blocks = 4800) {
  Report rep;
  const std::string isa(to_string(t.isa));
  for (DType type : {DType::Q8, DType::Q4, DType::Q4NL, DType::Q5}) {
    std::mt19937 rng(static_cast<std::uint32_t>(type) * 7919u + 3u);
    for (int n = 0; n < blocks; ++n) {
      const int kind = n % kScaleBlockKinds;
      float x[32], w[32];
      make_scale_block(kind, rng, x, w);
      const float got = t.fit_scale(type, x, w), want = ref.fit_scale(type, x, w);
      if (bits_of(got) != bits_of(want) && !(std::isnan(got) && std::isnan(want))) {
        rep.fail(isa, " fit_scale ", to_string(type), " block ", n, " kind ", kind, ": ", got,
                 " want ", want);
      }
    }
  }
  return rep;
}

}  // namespace qlm::kernels::check
