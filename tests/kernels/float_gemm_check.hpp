// Self-contained checks of KernelTable::gemm_float (f32 / f16 / bf16 weights), shared by the
// Catch2 tests and the NEON driver under qemu: each returns a Report, empty on success.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernel_check.hpp"
#include "qlm/detail/half.hpp"

namespace qlm::kernels::check {

// Row-major n x k weights in `type`'s bits, and the same values widened to f32. Rows by r % 4:
// random in [-1, 1]; large (|w| up to 2e4, near f16's top); zero; tiny (f16 subnormals).
struct FloatWeights {
  std::vector<std::uint8_t> bytes;
  std::vector<float> values;
};

inline float round_to(DType type, float v) {
  if (type == DType::F16) return qlm::detail::f16_to_f32(qlm::detail::f32_to_f16(v));
  if (type == DType::BF16) return qlm::detail::bf16_to_f32(qlm::detail::f32_to_bf16(v));
  return v;
}

inline FloatWeights make_float_weights(DType type, std::size_t n, std::size_t k,
                                       std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::size_t elem = type == DType::F32 ? 4 : 2;
  FloatWeights w{std::vector<std::uint8_t>(n * k * elem), std::vector<float>(n * k)};
  for (std::size_t r = 0; r < n; ++r) {
    const float scale = r % 4 == 0 ? 1.0f : r % 4 == 1 ? 2e4f : r % 4 == 2 ? 0.0f : 3e-6f;
    for (std::size_t c = 0; c < k; ++c) {
      const float v = round_to(type, u(rng) * scale);
      const std::size_t i = r * k + c;
      w.values[i] = v;
      if (type == DType::F32) {
        std::memcpy(&w.bytes[4 * i], &v, 4);
      } else {
        const std::uint16_t h =
            type == DType::F16 ? qlm::detail::f32_to_f16(v) : qlm::detail::f32_to_bf16(v);
        std::memcpy(&w.bytes[2 * i], &h, 2);
      }
    }
  }
  return w;
}

// One call over all rows and activation rows (row stride ldx = k + 3, ldy = n + 5), against `ref`
// or, with ref == nullptr, a double-precision dot product: |error| <= (k + 64) * eps * sum |w x|
// per kernel. Then the same output from every split: one row at a time, one activation row at a
// time, and rows [1, n - 1) alone, must be bit-identical, and nothing outside [r0, r1) written.
inline Report check_float_gemm(const KernelTable& t, const KernelTable* ref, DType type,
                               std::size_t n, std::size_t k, std::size_t m) {
  Report rep;
  const FloatWeights w = make_float_weights(type, n, k, static_cast<std::uint32_t>(n * 31 + k));
  Buffer<std::uint8_t> wb(w.bytes.size(), type == DType::F32 ? 4 : 2);  // element-aligned only
  std::memcpy(wb.data(), w.bytes.data(), w.bytes.size());
  const std::size_t ldx = k + 3, ldy = n + 5;
  std::mt19937 rng(static_cast<std::uint32_t>(m * 17 + k));
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  Buffer<float> x(m * ldx, 4);
  for (std::size_t i = 0; i < m * ldx; ++i) x[i] = u(rng);
  auto fresh = [&] { return std::vector<float>(m * ldy, kSentinel); };
  std::vector<float> y = fresh(), y2 = fresh();
  t.gemm_float(wb.data(), type, k, x.data(), m, ldx, y.data(), ldy, 0, n);
  if (ref != nullptr) ref->gemm_float(wb.data(), type, k, x.data(), m, ldx, y2.data(), ldy, 0, n);
  const auto where = [&](std::size_t i, std::size_t r) {
    std::ostringstream os;
    os << to_string(t.isa) << " " << to_string(type) << " n=" << n << " k=" << k << " m=" << m
       << ": y[" << i << "][" << r << "]";
    return os.str();
  };
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t r = 0; r < ldy; ++r) {
      const float got = y[i * ldy + r];
      if (r >= n) {
        if (std::memcmp(&got, &kSentinel, 4) != 0) rep.fail(where(i, r), " written past row n");
        continue;
      }
      double exact = 0.0, mag = 0.0;
      for (std::size_t c = 0; c < k; ++c) {
        const double p = static_cast<double>(w.values[r * k + c]) * x[i * ldx + c];
        exact += p;
        mag += std::fabs(p);
      }
      const double tol = mag * static_cast<double>(k + 64) * kEps * (ref != nullptr ? 2 : 1);
      const double want = ref != nullptr ? static_cast<double>(y2[i * ldy + r]) : exact;
      if (!(std::fabs(static_cast<double>(got) - want) <= tol)) {
        rep.fail(where(i, r), " = ", got, " want ", want, " (tol ", tol, ")");
      }
    }
  }
  std::vector<float> rows = fresh(), tokens = fresh(), middle = fresh();
  for (std::size_t r = 0; r < n; ++r) {
    t.gemm_float(wb.data(), type, k, x.data(), m, ldx, rows.data(), ldy, r, r + 1);
  }
  for (std::size_t i = 0; i < m; ++i) {
    t.gemm_float(wb.data(), type, k, x.data() + i * ldx, 1, ldx, tokens.data() + i * ldy, ldy, 0,
                 n);
  }
  if (n > 2) t.gemm_float(wb.data(), type, k, x.data(), m, ldx, middle.data(), ldy, 1, n - 1);
  for (std::size_t i = 0; i < m * ldy; ++i) {
    const std::size_t r = i % ldy;
    if (std::memcmp(&rows[i], &y[i], 4) != 0) rep.fail(where(i / ldy, r), " differs row by row");
    if (std::memcmp(&tokens[i], &y[i], 4) != 0) rep.fail(where(i / ldy, r), " differs alone");
    if (n <= 2) continue;
    const float want = r >= 1 && r + 1 < n ? y[i] : kSentinel;
    if (std::memcmp(&middle[i], &want, 4) != 0) rep.fail(where(i / ldy, r), " rows [1, n-1)");
  }
  return rep;
}

// Every awkward shape: k around the vector widths and long rows; n around the row tiles; m
// around the activation tiles.
inline Report check_all_float_gemm(const KernelTable& t, const KernelTable* ref) {
  Report rep;
  for (DType type : {DType::F32, DType::F16, DType::BF16}) {
    for (std::size_t k : {1, 3, 8, 15, 16, 17, 33, 64, 172, 576, 4099}) {
      for (std::size_t n : {1, 2, 7, 8, 9, 17, 33}) {
        for (std::size_t m : {1, 2, 3, 4, 5, 7, 9}) {
          if (k > 1000 && m > 3) continue;
          rep.merge(check_float_gemm(t, ref, type, n, k, m));
        }
      }
    }
  }
  return rep;
}

}  // namespace qlm::kernels::check
