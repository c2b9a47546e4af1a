// GPTQ's block error feedback written plainly (KernelTable::gptq_update's scalar twin): row by
// row, column by column, the block's updates in order. Built with -ffp-contract=off
// (detail/gptq_update.hpp says why).
#include <cstddef>

#include "detail/tables.hpp"

namespace qlm::kernels::detail {

void gptq_update_scalar(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                        const double* u, std::size_t k, std::size_t from, double* w) {
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = from; c < k; ++c) {
      double x = w[r * k + c];
      for (std::size_t i = 0; i < n; ++i) x -= e[r * ld_e + i] * u[i * k + c];
      w[r * k + c] = x;
    }
  }
}

}  // namespace qlm::kernels::detail
