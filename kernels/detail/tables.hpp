// Internal: the per-ISA kernel tables, each defined in its own translation unit with its own flags.
#pragma once

#include "kernel_table.hpp"

namespace qlm::kernels::detail {

const KernelTable& scalar_table() noexcept;
#if defined(__x86_64__) || defined(_M_X64)
const KernelTable& avx2_table() noexcept;
const KernelTable& avx512_table() noexcept;
const KernelTable& avx512_vnni_table() noexcept;
#endif
#if defined(__aarch64__)
const KernelTable& neon_table() noexcept;
const KernelTable& neon_dotprod_table() noexcept;
const KernelTable& neon_i8mm_table() noexcept;
#endif

}  // namespace qlm::kernels::detail
