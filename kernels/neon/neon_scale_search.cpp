// The block scale search, four candidates per NEON register (fcvtn/fcvtl round the scales).
#include "detail/scale_search_lanes.hpp"

namespace qlm::kernels::detail {

float fit_scale_neon(DType t, const float* x, const float* w) {
  return ScaleSearchLanes<xsimd::neon64>::fit_scale(t, x, w);
}

}  // namespace qlm::kernels::detail
