// GPTQ's block error feedback, two doubles per NEON register.
#include "detail/gptq_update.hpp"
#include "detail/tables.hpp"

namespace qlm::kernels::detail {

void gptq_update_neon(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                      const double* u, std::size_t k, std::size_t from, double* w) {
  GptqLanes<xsimd::neon64>::update(e, ld_e, rows, n, u, k, from, w);
}

}  // namespace qlm::kernels::detail
