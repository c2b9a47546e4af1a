// Block-wise error bounds for Q8/Q4, computed from the originals only.
#include "support/quant_bounds.hpp"

#include <algorithm>
#include <cmath>

#include "qlm/detail/half.hpp"

namespace qlm::test {
namespace {

constexpr double kSlack = 1e-4;  // float rounding of x * (1/d) and of the products

void record(BoundCheck& out, std::size_t i, double err, double bound) {
  ++out.values;
  const double ratio = bound > 0 ? err / bound : (err == 0 ? 0.0 : HUGE_VAL);
  out.worst = std::max(out.worst, ratio);
  if (ratio > 1.0) {
    ++out.violations;
    out.first_bad = std::min(out.first_bad, i);
  }
}

}  // namespace

float block_scale_magnitude(DType t, std::span<const float> block) {
  float amax = 0.0f;
  for (float v : block) amax = std::max(amax, std::fabs(v));
  const float d = amax / (t == DType::Q8 ? 127.0f : 8.0f);
  return detail::f16_to_f32(detail::f32_to_f16(d));
}

void check_quantized_row(DType t, std::span<const float> x, std::span<const float> xhat,
                         BoundCheck& out) {
  for (std::size_t c0 = 0; c0 < x.size(); c0 += kBlockK) {
    const std::size_t n = std::min(kBlockK, x.size() - c0);
    const auto block = x.subspan(c0, n);
    const double d = block_scale_magnitude(t, block);
    double amax = 0.0;
    for (float v : block) amax = std::max(amax, std::fabs(static_cast<double>(v)));
    bool extreme_exact = amax == 0.0;
    for (std::size_t i = c0; i < c0 + n; ++i) {
      const double err = std::fabs(static_cast<double>(x[i]) - static_cast<double>(xhat[i]));
      out.err2 += err * err;
      out.ref2 += static_cast<double>(x[i]) * x[i];
      const double half = 0.5 * d * (1 + kSlack);
      if (t == DType::Q8 || std::fabs(x[i]) <= 7.5 * d) {
        record(out, i, err, half);
      } else {
        record(out, i, err, d * (1 + 1.0 / 128));
      }
      if (std::fabs(x[i]) == amax && err <= half) extreme_exact = true;
    }
    if (t == DType::Q4 && !extreme_exact) {  // the extreme must land on level -8
      ++out.violations;
      out.first_bad = std::min(out.first_bad, c0);
    }
  }
}

}  // namespace qlm::test
