// The block scale search written plainly (KernelTable::fit_scale's scalar twin and its
// definition): the candidates in order, every sum in column order, a later candidate kept only if
// its error is strictly lower. Built with -ffp-contract=off (detail/scale_search.hpp).
#include "detail/scale_search.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {
namespace {

namespace ss = scale_search;

// Weighted squared error of the block stored with scale d.
float block_error(DType t, const float* x, const float* w, float d) {
  const float inv = d != 0.0f ? 1.0f / d : 0.0f;
  float err = 0.0f;
  for (std::size_t i = 0; i < ss::kBlock; ++i) {
    const float e = x[i] - ss::level(t, x[i] * inv) * d;
    err += w[i] * e * e;
  }
  return err;
}

// The least-squares scale for the levels that x takes at inverse scale inv, rounded to f16.
float refit(DType t, const float* x, const float* w, float inv) {
  float wxl = 0.0f, wll = 0.0f;
  for (std::size_t i = 0; i < ss::kBlock; ++i) {
    const float l = ss::level(t, x[i] * inv);
    wxl += w[i] * x[i] * l;
    wll += w[i] * l * l;
  }
  return ss::round_f16(wll > 0.0f ? wxl / wll : 0.0f);
}

}  // namespace

float fit_scale_scalar(DType t, const float* x, const float* w) {
  const float max = ss::extreme(x);
  float best_d = ss::rtn_scale(t, max);
  float best = block_error(t, x, w, best_d);
  if (max == 0.0f || best == 0.0f) return best_d;
  float best_target = 0.0f;
  auto consider = [&](float target) {
    const float d = refit(t, x, w, target / max);
    if (!(std::fabs(d) <= ss::kF16Max)) return;
    const float err = block_error(t, x, w, d);
    if (err < best) {
      best = err;
      best_d = d;
      best_target = target;
    }
  };
  const ss::Plan plan = ss::plan_for(t);
  for (std::size_t j = 0; j < plan.count; ++j) consider(plan.targets[j]);
  if (best_target != 0.0f) {
    const float center = best_target;
    for (float f : ss::kRefine) consider(center + f * plan.step);
  }
  return best_d;
}

}  // namespace qlm::kernels::detail
