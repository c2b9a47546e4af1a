// Self-contained check of KernelTable::gptq_update against its scalar twin, shared by the Catch2
// tests and the NEON driver under qemu: every ISA must leave the same bits in every weight, on
// shapes that exercise each path (4-row passes and single rows, two-vector and one-vector column
// tiles, scalar column tails, partial blocks, an update that starts mid-row or at its end) and on
// values where a fused multiply-add would round differently.
#pragma once

#include <cstring>
#include <random>
#include <vector>

#include "kernel_check.hpp"

namespace qlm::kernels::check {

inline Report check_gptq_update(const KernelTable& t, const KernelTable& ref) {
  Report rep;
  const std::string isa(to_string(t.isa));
  std::mt19937 rng(4242u);
  std::normal_distribution<double> normal(0.0, 1.0);
  constexpr std::size_t kLdE = 32;
  for (std::size_t rows : {1, 3, 4, 5, 16}) {
    for (std::size_t n : {1, 7, 31, 32}) {
      for (std::size_t k : {1, 5, 8, 33, 64, 67, 577}) {
        for (std::size_t from : {std::size_t{0}, k / 3, k - 1, k}) {
          std::vector<double> e(rows * kLdE), u(n * k), w(rows * k);
          for (auto& x : e) x = normal(rng) * 1e-2;
          for (auto& x : u) x = normal(rng) * (rng() % 4 == 0 ? 1e3 : 1.0);
          for (auto& x : w) x = normal(rng);
          std::vector<double> got = w, want = w;
          t.gptq_update(e.data(), kLdE, rows, n, u.data(), k, from, got.data());
          ref.gptq_update(e.data(), kLdE, rows, n, u.data(), k, from, want.data());
          if (std::memcmp(got.data(), want.data(), w.size() * sizeof(double)) != 0) {
            std::size_t i = 0;
            while (std::memcmp(&got[i], &want[i], sizeof(double)) == 0) ++i;
            rep.fail(isa, " gptq_update rows ", rows, " n ", n, " k ", k, " from ", from, ": w[", i,
                     "] = ", got[i], " want ", want[i]);
          }
          for (std::size_t i = 0; i < rows * k; ++i) {  // columns before `from` are untouched
            if (i % k < from && std::memcmp(&got[i], &w[i], sizeof(double)) != 0) {
              rep.fail(isa, " gptq_update wrote column ", i % k, " before from = ", from);
              break;
            }
          }
        }
      }
    }
  }
  return rep;
}

}  // namespace qlm::kernels::check
