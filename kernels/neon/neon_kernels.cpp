// AArch64 kernels (Isa::Neon): Advanced SIMD only (no dot product): widening vmull_s8 + pairwise
// adds.
#include "detail/float_ops.hpp"
#include "detail/neon_gemm.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

// Activation quantization is the scalar reference's (bit-exact by definition; it is O(k) per
// row, negligible next to the O(n*k) matmul).
const KernelTable& neon_table() noexcept {
  using F = FloatOps<xsimd::neon64>;
  static const KernelTable table{Isa::Neon,
                                 scalar_table().quantize_rows,
                                 gemm<true, NeonDot::Base>,
                                 gemm<false, NeonDot::Base>,
                                 F::rmsnorm,
                                 F::softmax,
                                 F::silu_mul,
                                 F::rope,
                                 F::add,
                                 F::dot,
                                 F::axpy};
  return table;
}

}  // namespace qlm::kernels::detail
