// inverse_cholesky_upper: H = L L^T, H^-1 = L^-T L^-1, then H^-1 = U^T U by a second Cholesky, as
// GPTQ does; all in double precision (H of a few thousand columns is well within its range).
#include "quant/hessian.hpp"

#include <cmath>

namespace qlm::quant::gptq {
namespace {

// In-place lower Cholesky factor of a (row-major, symmetric); false if not positive definite.
bool cholesky(std::vector<double>& a, std::size_t k) {
  for (std::size_t j = 0; j < k; ++j) {
    double d = a[j * k + j];
    for (std::size_t p = 0; p < j; ++p) d -= a[j * k + p] * a[j * k + p];
    if (!(d > 0.0)) return false;
    const double l = std::sqrt(d);
    a[j * k + j] = l;
    for (std::size_t i = j + 1; i < k; ++i) {
      double s = a[i * k + j];
      for (std::size_t p = 0; p < j; ++p) s -= a[i * k + p] * a[j * k + p];
      a[i * k + j] = s / l;
    }
    for (std::size_t i = 0; i < j; ++i) a[i * k + j] = 0.0;  // clear the upper triangle
  }
  return true;
}

// (L L^T)^-1 from the lower factor L: M = L^-1 by forward substitution, then M^T M.
std::vector<double> inverse_from_cholesky(const std::vector<double>& l, std::size_t k) {
  std::vector<double> m(k * k, 0.0);
  for (std::size_t j = 0; j < k; ++j) {
    m[j * k + j] = 1.0 / l[j * k + j];
    for (std::size_t i = j + 1; i < k; ++i) {
      double s = 0.0;
      for (std::size_t p = j; p < i; ++p) s -= l[i * k + p] * m[p * k + j];
      m[i * k + j] = s / l[i * k + i];
    }
  }
  std::vector<double> inv(k * k, 0.0);
  for (std::size_t i = 0; i < k; ++i) {
    for (std::size_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (std::size_t p = i; p < k; ++p) s += m[p * k + i] * m[p * k + j];
      inv[i * k + j] = inv[j * k + i] = s;
    }
  }
  return inv;
}

}  // namespace

std::vector<double> inverse_cholesky_upper(std::span<const float> h, std::size_t k,
                                           double damping) {
  double mean_diag = 0.0;
  for (std::size_t i = 0; i < k; ++i) mean_diag += h[i * k + i];
  mean_diag = mean_diag > 0.0 ? mean_diag / static_cast<double>(k) : 1.0;
  double damp = damping * mean_diag;
  for (int attempt = 0; attempt < 12; ++attempt, damp *= 10.0) {
    std::vector<double> a(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(k * k));
    for (std::size_t i = 0; i < k; ++i) {
      if (h[i * k + i] <= 0.0f) {  // an input that is always zero: decouple it
        for (std::size_t j = 0; j < k; ++j) a[i * k + j] = a[j * k + i] = 0.0;
        a[i * k + i] = 1.0;
      }
    }
    for (std::size_t i = 0; i < k; ++i) a[i * k + i] += damp;
    if (!cholesky(a, k)) continue;
    std::vector<double> inv = inverse_from_cholesky(a, k);
    if (!cholesky(inv, k)) continue;
    std::vector<double> u(k * k, 0.0);  // the transpose of the lower factor
    for (std::size_t i = 0; i < k; ++i) {
      for (std::size_t j = i; j < k; ++j) u[i * k + j] = inv[j * k + i];
    }
    return u;
  }
  std::vector<double> u(k * k, 0.0);  // not a usable H (non-finite): no error feedback at all
  for (std::size_t i = 0; i < k; ++i) u[i * k + i] = 1.0;
  return u;
}

}  // namespace qlm::quant::gptq
