// Internal: the per-ISA kernel tables, each defined in its own translation unit with its own flags.
#pragma once

#include "kernel_table.hpp"

namespace qlm::kernels::detail {

const KernelTable& scalar_table() noexcept;
/// KernelTable::fit_scale: the scalar reference (ref/ref_scale_search.cpp) and its vector twins.
float fit_scale_scalar(DType t, const float* x, const float* w);
#if defined(__x86_64__) || defined(_M_X64)
const KernelTable& avx2_table() noexcept;
const KernelTable& avx512_table() noexcept;
const KernelTable& avx512_vnni_table() noexcept;
float fit_scale_x86(DType t, const float* x, const float* w);
#endif
#if defined(__aarch64__)
const KernelTable& neon_table() noexcept;
const KernelTable& neon_dotprod_table() noexcept;
const KernelTable& neon_i8mm_table() noexcept;
float fit_scale_neon(DType t, const float* x, const float* w);
#endif

}  // namespace qlm::kernels::detail
