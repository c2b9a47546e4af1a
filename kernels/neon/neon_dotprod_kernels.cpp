// AArch64 kernels (Isa::NeonDotprod): ARMv8.2 dot product (sdot), 4 K values x 4 rows per
// instruction.
#include "detail/float_ops.hpp"
#include "detail/neon_gemm.hpp"
#include "detail/neon_quantize.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

const KernelTable& neon_dotprod_table() noexcept {
  static const KernelTable table = table_with_float_ops<xsimd::neon64>(
      Isa::NeonDotprod, quantize_rows_neon, gemm<DType::Q8, NeonDot::Dotprod>,
      gemm<DType::Q4, NeonDot::Dotprod>, gemm<DType::Q4NL, NeonDot::Dotprod>,
      gemm<DType::Q5, NeonDot::Dotprod>);
  return table;
}

}  // namespace qlm::kernels::detail
