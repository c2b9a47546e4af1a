// Internal: the float-weight GEMM (KernelTable::gemm_float) written once over xsimd and
// instantiated per ISA translation unit; internal linkage keeps the copies apart.
//
// Weights are read in their stored type and widened in registers (f16 with vcvtph2ps / fcvtl,
// bf16 by a 16-bit shift, which is exact), so a decode step streams 2 bytes per f16 or bf16 weight
// instead of dequantizing a row to memory first. Each (row, activation row) pair owns its vector
// accumulators, which walk k in a fixed order and are reduced once at the end: its bits depend on
// nothing else in the call, whatever the tile it was computed in.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "detail/widen.hpp"
#include "kernel_table.hpp"

namespace qlm::kernels {
namespace {

template <class A>
struct FloatGemm {
  using B = xsimd::batch<float, A>;
  static constexpr std::size_t W = B::size;

  static constexpr std::size_t elem_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

  // One vector of weights starting at element i of a row, widened to f32.
  template <DType T>
  static B load_w(const void* row, std::size_t i) {
    if constexpr (T == DType::F32) {
      return B::load_unaligned(static_cast<const float*>(row) + i);
    } else if constexpr (T == DType::F16) {
      return Widen<A>::f16(static_cast<const std::uint16_t*>(row) + i);
    } else {
      return Widen<A>::bf16(static_cast<const std::uint16_t*>(row) + i);
    }
  }

  // The last n < W weights of a row from element i, zero-padded to one vector (zero bits are
  // 0.0 in every type).
  template <DType T>
  static B load_w_tail(const std::uint8_t* row, std::size_t i, std::size_t n) {
    alignas(64) std::uint8_t t[W * 4] = {};
    std::memcpy(t, row + i * elem_bytes(T), n * elem_bytes(T));
    return load_w<T>(t, 0);
  }
  static B load_x_tail(const float* x, std::size_t n) {
    alignas(64) float t[W] = {};
    std::copy(x, x + n, t);
    return B::load_aligned(t);
  }

  // Accumulators per (row, activation row): vector j of k (the last one zero-padded) goes to
  // accumulator j % kAcc, and they are summed as ((a0 + a1) + (a2 + a3)) before the horizontal
  // add. Independent FMA chains within a row let decode read one row at a time (see rows_for).
  // AVX2's 16 registers take two, not four.
  static constexpr bool kFewRegisters = std::is_same_v<A, xsimd::avx2>;
  static constexpr std::size_t kAcc = kFewRegisters ? 2 : 4;
  static constexpr std::size_t kMaxM = kFewRegisters ? 3 : 4;  // activation rows per tile

  // y[m][r] for R weight rows starting at r and M activation rows.
  template <DType T, std::size_t R, std::size_t M>
  static void tile(const std::uint8_t* w, std::size_t k, const float* x, std::size_t ldx, float* y,
                   std::size_t ldy, std::size_t r) {
    const std::uint8_t* rows[R];
    for (std::size_t i = 0; i < R; ++i) rows[i] = w + (r + i) * k * elem_bytes(T);
    B acc[R][M][kAcc];
    for (auto& ri : acc)
      for (auto& mi : ri)
        for (B& v : mi) v = B(0.0f);
    // One vector step: weights of column c, activations of column c, into accumulator a.
    const auto step = [&](std::size_t c, std::size_t a) {
      B xv[M];
      for (std::size_t j = 0; j < M; ++j) xv[j] = B::load_unaligned(x + j * ldx + c);
      for (std::size_t i = 0; i < R; ++i) {
        const B wv = load_w<T>(rows[i], c);
        for (std::size_t j = 0; j < M; ++j) acc[i][j][a] = xsimd::fma(wv, xv[j], acc[i][j][a]);
      }
    };
    // Accumulator indices stay compile-time constants (the loops over a are unrolled), so the
    // accumulators live in registers: a runtime index would put them on the stack, which cost a
    // third of a step at stories260K's k = 64.
    const std::size_t full = k / W;
    std::size_t j = 0;
    for (; j + kAcc <= full; j += kAcc) {
#pragma GCC unroll 8
      for (std::size_t a = 0; a < kAcc; ++a) step((j + a) * W, a);
    }
    const std::size_t left = full - j;  // full vectors past the last group, < kAcc
#pragma GCC unroll 8
    for (std::size_t a = 0; a + 1 < kAcc; ++a) {
      if (a < left) step((j + a) * W, a);
    }
    if (full * W < k) {
      const std::size_t c = full * W, n = k - c;
      B xv[M];
      for (std::size_t m = 0; m < M; ++m) xv[m] = load_x_tail(x + m * ldx + c, n);
      for (std::size_t i = 0; i < R; ++i) {
        const B wv = load_w_tail<T>(rows[i], c, n);
#pragma GCC unroll 8
        for (std::size_t a = 0; a < kAcc; ++a) {
          if (a != left) continue;  // vector `full` goes to accumulator full % kAcc = left
          for (std::size_t m = 0; m < M; ++m) acc[i][m][a] = xsimd::fma(wv, xv[m], acc[i][m][a]);
        }
      }
    }
    for (std::size_t i = 0; i < R; ++i) {
      for (std::size_t m = 0; m < M; ++m) {
        const B* v = acc[i][m];
        const B sum = kAcc == 4 ? (v[0] + v[1]) + (v[2] + v[kAcc - 1]) : v[0] + v[kAcc - 1];
        y[m * ldy + r + i] = xsimd::hadd(sum);
      }
    }
  }

  // Row tiles for M activation rows. Decode (M = 1) reads one row at a time: its kAcc chains hide
  // the FMA latency, and a single sequential stream per thread ran 1.3-2x faster here than two or
  // more interleaved row streams, with or without software prefetch (bench/RESULTS.md, session
  // 16). Two activation rows take two weight rows per tile; more take one.
  template <DType T, std::size_t M>
  static void rows_for(const std::uint8_t* w, std::size_t k, const float* x, std::size_t ldx,
                       float* y, std::size_t ldy, std::size_t r0, std::size_t r1) {
    constexpr std::size_t R = M == 2 ? 2 : 1;
    std::size_t r = r0;
    for (; r + R <= r1; r += R) tile<T, R, M>(w, k, x, ldx, y, ldy, r);
    for (; r < r1; ++r) tile<T, 1, M>(w, k, x, ldx, y, ldy, r);
  }

  template <DType T>
  static void gemm_typed(const std::uint8_t* w, std::size_t k, const float* x, std::size_t m,
                         std::size_t ldx, float* y, std::size_t ldy, std::size_t r0,
                         std::size_t r1) {
    constexpr std::size_t M = kMaxM;
    // Rows in blocks of ~64 KiB of weights, so every activation tile rereads them from L2.
    const std::size_t block = std::max<std::size_t>(8, (65536 / (k * elem_bytes(T))) / 8 * 8);
    for (std::size_t b0 = r0; b0 < r1; b0 += block) {
      const std::size_t b1 = std::min(r1, b0 + block);
      std::size_t i = 0;
      for (; i + M <= m; i += M) rows_for<T, M>(w, k, x + i * ldx, ldx, y + i * ldy, ldy, b0, b1);
      switch (m - i) {
        case 1:
          rows_for<T, 1>(w, k, x + i * ldx, ldx, y + i * ldy, ldy, b0, b1);
          break;
        case 2:
          rows_for<T, 2>(w, k, x + i * ldx, ldx, y + i * ldy, ldy, b0, b1);
          break;
        case 3:
          if constexpr (M > 3) rows_for<T, 3>(w, k, x + i * ldx, ldx, y + i * ldy, ldy, b0, b1);
          break;
        default:
          break;
      }
    }
  }

  static void gemm(const std::uint8_t* w, DType type, std::size_t k, const float* x, std::size_t m,
                   std::size_t ldx, float* y, std::size_t ldy, std::size_t r0, std::size_t r1) {
    switch (type) {
      case DType::F32:
        return gemm_typed<DType::F32>(w, k, x, m, ldx, y, ldy, r0, r1);
      case DType::F16:
        return gemm_typed<DType::F16>(w, k, x, m, ldx, y, ldy, r0, r1);
      case DType::BF16:
        return gemm_typed<DType::BF16>(w, k, x, m, ldx, y, ldy, r0, r1);
      default:
        return;
    }
  }
};

}  // namespace
}  // namespace qlm::kernels
