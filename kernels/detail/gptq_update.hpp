// Internal: GPTQ's block error feedback (KernelTable::gptq_update) written once over xsimd. Each
// weight w[r][c] receives its updates w -= e[r][i] * u[i][c] one at a time, i in order, every
// product rounded before the subtraction, exactly as the scalar twin (ref/ref_gptq.cpp) does: the
// lanes hold columns, so vectorizing changes no operation and every ISA gives the twin's bits.
// Translation units including this are built with -ffp-contract=off, which keeps the compiler
// from fusing the multiply and the subtraction (an FMA rounds once and would change the bits).
#pragma once

#include <cstddef>
#include <xsimd/xsimd.hpp>

namespace qlm::kernels::detail {

template <class A>
struct GptqLanes {
  using B = xsimd::batch<double, A>;
  static constexpr std::size_t W = B::size;
  static constexpr std::size_t kRows = 4;  // rows per pass share each loaded vector of u
  static constexpr std::size_t kCols = 2;  // vectors of columns per pass: 8 accumulators

  // KernelTable::gptq_update's contract.
  static void update(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                     const double* u, std::size_t k, std::size_t from, double* w) {
    std::size_t r = 0;
    for (; r + kRows <= rows; r += kRows) pass<kRows>(e + r * ld_e, ld_e, n, u, k, from, w + r * k);
    for (; r < rows; ++r) pass<1>(e + r * ld_e, ld_e, n, u, k, from, w + r * k);
  }

 private:
  template <std::size_t R, std::size_t C>
  static void tile(const double* e, std::size_t ld_e, std::size_t n, const double* u, std::size_t k,
                   std::size_t c, double* w) {
    B acc[R][C];
    for (std::size_t r = 0; r < R; ++r) {
      for (std::size_t v = 0; v < C; ++v) acc[r][v] = B::load_unaligned(w + r * k + c + v * W);
    }
    for (std::size_t i = 0; i < n; ++i) {
      B uv[C];
      for (std::size_t v = 0; v < C; ++v) uv[v] = B::load_unaligned(u + i * k + c + v * W);
      for (std::size_t r = 0; r < R; ++r) {
        const B ev(e[r * ld_e + i]);
        for (std::size_t v = 0; v < C; ++v) acc[r][v] = acc[r][v] - ev * uv[v];
      }
    }
    for (std::size_t r = 0; r < R; ++r) {
      for (std::size_t v = 0; v < C; ++v) acc[r][v].store_unaligned(w + r * k + c + v * W);
    }
  }

  template <std::size_t R>
  static void pass(const double* e, std::size_t ld_e, std::size_t n, const double* u, std::size_t k,
                   std::size_t from, double* w) {
    std::size_t c = from;
    for (; c + kCols * W <= k; c += kCols * W) tile<R, kCols>(e, ld_e, n, u, k, c, w);
    for (; c + W <= k; c += W) tile<R, 1>(e, ld_e, n, u, k, c, w);
    for (; c < k; ++c) {
      for (std::size_t r = 0; r < R; ++r) {
        double x = w[r * k + c];
        for (std::size_t i = 0; i < n; ++i) x -= e[r * ld_e + i] * u[i * k + c];
        w[r * k + c] = x;
      }
    }
  }
};

}  // namespace qlm::kernels::detail
