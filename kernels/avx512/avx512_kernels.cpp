// AVX-512 (F/BW/DQ/VL, no VNNI) kernels (Isa::Avx512): the 4-byte dot product is emulated exactly
// with vpmaddubsw + vpmaddwd (see detail/avx512_gemm.hpp for the saturation argument).
#include "detail/avx512_gemm.hpp"
#include "detail/float_ops.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

const KernelTable& avx512_table() noexcept {
  static const KernelTable table = table_with_float_ops<xsimd::avx512bw>(
      Isa::Avx512, quantize_rows_avx512, gemm<DType::Q8, false>, gemm<DType::Q4, false>,
      gemm<DType::Q4NL, false>, gemm<DType::Q5, false>);
  return table;
}

}  // namespace qlm::kernels::detail
