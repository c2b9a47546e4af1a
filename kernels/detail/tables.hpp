// Internal: the per-ISA kernel tables, each defined in its own translation unit with its own flags.
#pragma once

#include "kernel_table.hpp"

namespace qlm::kernels::detail {

const KernelTable& scalar_table() noexcept;
/// KernelTable::fit_scale: the scalar reference (ref/ref_scale_search.cpp) and its vector twins.
float fit_scale_scalar(DType t, const float* x, const float* w);
/// KernelTable::gptq_update: the scalar reference (ref/ref_gptq.cpp) and its vector twins.
void gptq_update_scalar(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                        const double* u, std::size_t k, std::size_t from, double* w);
#if defined(__x86_64__) || defined(_M_X64)
const KernelTable& avx2_table() noexcept;
const KernelTable& avx512_table() noexcept;
const KernelTable& avx512_vnni_table() noexcept;
float fit_scale_x86(DType t, const float* x, const float* w);
void gptq_update_x86(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                     const double* u, std::size_t k, std::size_t from, double* w);
#endif
#if defined(__aarch64__)
const KernelTable& neon_table() noexcept;
const KernelTable& neon_dotprod_table() noexcept;
const KernelTable& neon_i8mm_table() noexcept;
float fit_scale_neon(DType t, const float* x, const float* w);
void gptq_update_neon(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                      const double* u, std::size_t k, std::size_t from, double* w);
#endif

}  // namespace qlm::kernels::detail
