// AVX-512 VNNI kernels (Isa::Avx512Vnni): vpdpbusd multiplies the unsigned weight bytes by the
// signed activation bytes directly, 4 K values x 16 rows per instruction.
#include "detail/avx512_gemm.hpp"
#include "detail/float_ops.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

const KernelTable& avx512_vnni_table() noexcept {
  static const KernelTable table = table_with_float_ops<xsimd::avx512bw>(
      Isa::Avx512Vnni, quantize_rows_avx512, gemm<DType::Q8, true>, gemm<DType::Q4, true>,
      gemm<DType::Q4NL, true>, gemm<DType::Q5, true>);
  return table;
}

}  // namespace qlm::kernels::detail
