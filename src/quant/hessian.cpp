// inverse_cholesky_upper: H = L L^T, H^-1 = L^-T L^-1, then H^-1 = U^T U by a second Cholesky, as
// GPTQ does; all in double precision (H of a few thousand columns is well within its range).
// Eigen's blocked factorizations and triangular solves do the O(k^3) work.
#include "quant/hessian.hpp"

// The library is built with OpenMP, which Eigen would use for threads of its own; the quantizer
// runs only on the pool it is given (docs/architecture.md).
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <optional>

namespace qlm::quant::gptq {
namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// H + damp I in double, with the rows and columns of always-zero inputs replaced by the identity.
Matrix damped(std::span<const float> h, std::size_t k, double damp) {
  const auto n = static_cast<Eigen::Index>(k);
  Matrix a =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          h.data(), n, n)
          .cast<double>();
  for (Eigen::Index i = 0; i < n; ++i) {
    if (h[static_cast<std::size_t>(i) * k + static_cast<std::size_t>(i)] <= 0.0f) {
      a.row(i).setZero();  // an input that is always zero: decouple it
      a.col(i).setZero();
      a(i, i) = 1.0;
    }
  }
  a.diagonal().array() += damp;
  return a;
}

// The lower Cholesky factor of a, or nothing if a is not (numerically) positive definite; Eigen
// reports a non-positive pivot but not a NaN one, hence the finiteness check.
std::optional<Matrix> lower_factor(const Matrix& a) {
  Eigen::LLT<Matrix> llt(a);
  if (llt.info() != Eigen::Success) return std::nullopt;
  Matrix l = llt.matrixL();
  if (!l.allFinite() || !(l.diagonal().array() > 0.0).all()) return std::nullopt;
  return l;
}

}  // namespace

std::vector<double> inverse_cholesky_upper(std::span<const float> h, std::size_t k,
                                           double damping) {
  double mean_diag = 0.0;
  for (std::size_t i = 0; i < k; ++i) mean_diag += h[i * k + i];
  mean_diag = mean_diag > 0.0 ? mean_diag / static_cast<double>(k) : 1.0;
  double damp = damping * mean_diag;
  const auto n = static_cast<Eigen::Index>(k);
  for (int attempt = 0; attempt < 12; ++attempt, damp *= 10.0) {
    const std::optional<Matrix> l = lower_factor(damped(h, k, damp));
    if (!l) continue;
    // M = L^-1 by a triangular solve, then (L L^T)^-1 = M^T M.
    const Matrix m = l->triangularView<Eigen::Lower>().solve(Matrix::Identity(n, n));
    Matrix inv = Matrix::Zero(n, n);
    inv.selfadjointView<Eigen::Lower>().rankUpdate(m.transpose());
    const std::optional<Matrix> l2 = lower_factor(inv);
    if (!l2) continue;
    std::vector<double> u(k * k, 0.0);  // the transpose of the lower factor
    Eigen::Map<Matrix>(u.data(), n, n) = l2->transpose();
    return u;
  }
  std::vector<double> u(k * k, 0.0);  // not a usable H (non-finite): no error feedback at all
  for (std::size_t i = 0; i < k; ++i) u[i * k + i] = 1.0;
  return u;
}

}  // namespace qlm::quant::gptq
