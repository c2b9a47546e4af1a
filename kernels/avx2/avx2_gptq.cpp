// GPTQ's block error feedback, four doubles per AVX2 register. Every x86 table uses it: on the
// AVX-512 machines we measure (512-bit operations split in two) sixteen-lane tiles gain nothing.
#include "detail/gptq_update.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

void gptq_update_x86(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                     const double* u, std::size_t k, std::size_t from, double* w) {
  GptqLanes<xsimd::avx2>::update(e, ld_e, rows, n, u, k, from, w);
}

}  // namespace qlm::kernels::detail
