// AArch64 kernels (Isa::Neon): Advanced SIMD only (no dot product): widening vmull_s8 + pairwise
// adds.
#include "detail/float_ops.hpp"
#include "detail/neon_gemm.hpp"
#include "detail/neon_quantize.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

const KernelTable& neon_table() noexcept {
  static const KernelTable table = table_with_float_ops<xsimd::neon64>(
      Isa::Neon, quantize_rows_neon, gemm<DType::Q8, NeonDot::Base>, gemm<DType::Q4, NeonDot::Base>,
      gemm<DType::Q4NL, NeonDot::Base>, gemm<DType::Q5, NeonDot::Base>);
  return table;
}

}  // namespace qlm::kernels::detail
