// The block scale search, eight candidates per AVX2 register (F16C rounds the refitted scales).
// Every x86 table uses it: eight lanes fit the q4 search's 23 slots in three registers, and the
// AVX-512 machines that split 512-bit operations would gain nothing from sixteen.
#include "detail/scale_search_lanes.hpp"

namespace qlm::kernels::detail {

float fit_scale_x86(DType t, const float* x, const float* w) {
  return ScaleSearchLanes<xsimd::avx2>::fit_scale(t, x, w);
}

}  // namespace qlm::kernels::detail
