// Reference (scalar) quantizers and dequantizers for the Q8, Q4, Q4NL and Q5 tile layout; shared by
// the converter and the tests so the two cannot drift.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "qlm/format/dtype.hpp"
#include "qlm/quant/layout.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm::quant {

/// How each block's scale is chosen.
enum class ScaleMethod : std::uint8_t {
  Rtn,  ///< round to nearest with d = extreme / -8 (Q4), extreme / -127 (Q4NL) or amax / 127 (Q8)
  Fit,  ///< searches scales around Rtn's and refits by least squares; never worse than Rtn
};

/// Options of quantize_matrix.
struct QuantizeOptions {
  ScaleMethod method = ScaleMethod::Fit;
  /// Per input column (k values, >= 0): how much an error in that column costs, e.g. the mean
  /// square of the activations it multiplies (Importance). Empty = every column alike.
  std::span<const float> importance{};
  /// Optional k x k (row-major) second moment E[x x^T] of the inputs the matrix multiplies. When
  /// given, each row is quantized column by column and each column's rounding error is
  /// compensated on the columns not yet quantized, as GPTQ (Frantar et al., 2022) does: it
  /// minimizes the output error sum_r dw_r^T H dw_r rather than each weight's own error. Block
  /// scales are still chosen as `method` says, on the values as compensated so far.
  std::span<const float> hessian{};
  /// Runs the row groups here (the application's pool); null = on the calling thread. The result
  /// is the same on any pool: groups are independent.
  ThreadPool* pool = nullptr;
  /// Optional gptq_factor(hessian, k), computed once for the matrices that read one input (q, k
  /// and v; gate and up), which would otherwise each factor the same k x k matrix again.
  std::span<const double> hessian_factor{};
};

/// The factor GPTQ rounds with for inputs of second moment `hessian` (k x k, row-major): U, upper
/// triangular, with U^T U = (H + damp I)^-1 (docs/quantization.md). O(k^3) work; share it.
std::vector<double> gptq_factor(std::span<const float> hessian, std::size_t k);

/// Quantizes a row-major [rows, k] f32 matrix into the Q8, Q4, Q4NL or Q5 tile layout.
/// `out` must hold TileGeometry(t, rows, k).total_bytes(). Inputs must be finite with
/// |x| <= 65504 * max_level(t), so every block scale fits an f16 (the converter checks this).
void quantize_matrix(DType t, std::span<const float> src, std::size_t rows, std::size_t k,
                     std::span<std::uint8_t> out, const QuantizeOptions& options = {});

/// Dequantizes logical row `row` of a [rows, k] tensor of any type into `out` (k floats).
void dequantize_row(DType t, std::span<const std::uint8_t> data, std::size_t rows, std::size_t k,
                    std::size_t row, std::span<float> out);

/// Sum over rows of dw_r^T H dw_r, dw = x - dequantized x: the expected squared output error for
/// inputs with second moment `hessian` (k x k, row-major).
double hessian_error(DType t, std::span<const float> src, std::span<const std::uint8_t> data,
                     std::size_t rows, std::size_t k, std::span<const float> hessian,
                     ThreadPool* pool = nullptr);

/// Sum over the matrix of importance[c] * (x - dequantized x)^2 (importance empty = 1): the
/// expected squared output error the quantization adds, up to a constant.
double weighted_error(DType t, std::span<const float> src, std::span<const std::uint8_t> data,
                      std::size_t rows, std::size_t k, std::span<const float> importance = {},
                      ThreadPool* pool = nullptr);

/// Each row's expected squared output error, dw_r^T H dw_r with `hessian` (k x k), or else
/// sum_c importance[c] * dw_rc^2 (importance empty = 1); the two functions above sum these. Rows
/// run on `pool` (null = the calling thread); each is summed in one order, so any pool gives
/// the same bits.
std::vector<double> row_errors(DType t, std::span<const float> src,
                               std::span<const std::uint8_t> data, std::size_t rows, std::size_t k,
                               std::span<const float> importance, std::span<const float> hessian,
                               ThreadPool* pool = nullptr);

/// Largest |x| / scale that still fits the type's range: 8 (Q4), 16 (Q5) or 127 (Q8, Q4NL).
constexpr float max_level(DType t) noexcept {
  return t == DType::Q4 ? 8.0f : t == DType::Q5 ? 16.0f : 127.0f;
}

}  // namespace qlm::quant
