// Linear algebra for error-feedback quantization (GPTQ): the upper Cholesky factor of the inverse
// of a layer's input second-moment matrix H = E[x x^T].
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace qlm::quant::gptq {

/// U (row-major k x k, upper triangular) with U^T U = (H + damp I)^-1, damp = `damping` times the
/// mean of H's diagonal, raised tenfold until H + damp I is positive definite. Zero columns of H
/// (inputs that are always zero) get a diagonal of 1, so their weights are rounded as they are.
std::vector<double> inverse_cholesky_upper(std::span<const float> h, std::size_t k,
                                           double damping = 0.01);

}  // namespace qlm::quant::gptq
