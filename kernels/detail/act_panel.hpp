// Internal: the activation panel of the GEMM micro-kernels. Up to kMrMax quantized activation rows
// x kKc blocks of K are copied so that one block's rows sit side by side ([block][row]); a
// micro-kernel then addresses every row at a constant offset from one pointer. With each row's own
// code, scale and sum pointers GCC ran out of general registers and spilled in the inner loop
// (docs/kernels.md). The zero-point term -zp * s is precomputed. ISA-neutral code in an anonymous
// namespace, so the differently-flagged translation units that include it never share a copy.
#pragma once

#include <cstring>

#include "detail/weight_format.hpp"
#include "kernel_table.hpp"

namespace qlm::kernels {
namespace {

constexpr std::size_t kMrMax = 8;
constexpr std::size_t kKc = 64;  // 16 KiB of codes: a panel stays in L1

struct Panel {
  alignas(64) std::int8_t q[kKc][kMrMax][kActBlock];
  alignas(64) float d[kKc][kMrMax];
  alignas(64) std::int32_t bias[kKc][kMrMax];  ///< -zero_point * s
};

/// Copies rows [m0, m0 + mr) x blocks [b0, b0 + nb) of a into p (mr <= kMrMax, nb <= kKc).
template <DType F>
void pack_panel(const QuantizedRows& a, std::size_t m0, std::size_t mr, std::size_t b0,
                std::size_t nb, Panel& p) {
  const std::size_t stride = a.blocks * kActBlock;
  for (std::size_t r = 0; r < mr; ++r) {
    const std::size_t ab = (m0 + r) * a.blocks + b0;
    for (std::size_t b = 0; b < nb; ++b) {
      std::memcpy(p.q[b][r], a.q + (m0 + r) * stride + (b0 + b) * kActBlock, kActBlock);
      p.d[b][r] = a.d[ab + b];
      p.bias[b][r] = -detail::zero_point(F) * a.s[ab + b];
    }
  }
}

}  // namespace
}  // namespace qlm::kernels
