// AArch64 kernels (Isa::NeonI8mm): ARMv8.6 int8 matmul extension (usdot: unsigned weights x signed
// activations).
#include "detail/float_ops.hpp"
#include "detail/neon_gemm.hpp"
#include "detail/neon_quantize.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

const KernelTable& neon_i8mm_table() noexcept {
  static const KernelTable table = table_with_float_ops<xsimd::neon64>(
      Isa::NeonI8mm, quantize_rows_neon, gemm<DType::Q8, NeonDot::I8mm>,
      gemm<DType::Q4, NeonDot::I8mm>, gemm<DType::Q4NL, NeonDot::I8mm>,
      gemm<DType::Q5, NeonDot::I8mm>);
  return table;
}

}  // namespace qlm::kernels::detail
