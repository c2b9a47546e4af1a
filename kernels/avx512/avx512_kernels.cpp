// AVX-512 (F/BW/DQ/VL, no VNNI) kernels (Isa::Avx512): the 4-byte dot product is emulated exactly
// with vpmaddubsw + vpmaddwd (see detail/avx512_gemm.hpp for the saturation argument).
#include "detail/avx512_gemm.hpp"
#include "detail/float_ops.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

const KernelTable& avx512_table() noexcept {
  using F = FloatOps<xsimd::avx512bw>;
  static const KernelTable table{Isa::Avx512,
                                 quantize_rows_avx512,
                                 gemm<true, false>,
                                 gemm<false, false>,
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
