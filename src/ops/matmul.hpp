// The matmul driver: quantizes activation rows once, splits a weight matrix's 16-row groups into
// fixed chunks for the thread pool, and calls the ISA's kernel for each band of rows: the integer
// GEMMs for quantized bands, the float GEMM (on the unquantized rows) for f32, f16 and bf16 ones.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernel_table.hpp"
#include "model_weights.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm::ops {

/// Activation rows quantized for the integer kernels, with buffers reused across calls.
class QuantizedActivations {
 public:
  /// Quantizes x[m][k] (row stride ldx); buffers grow only the first time a size is seen.
  /// With `split`, rows [m, 2m) hold the int8 quantization of what rows [0, m) missed
  /// (x - dequantized x), so a matmul over both and a sum of the halves sees ~15-bit inputs.
  /// Rows are independent: with a pool, batches of ops::kParallelRows rows or more are cut into
  /// row ranges on it (the same bits).
  void quantize(const kernels::KernelTable& kt, const float* x, std::size_t m, std::size_t k,
                std::size_t ldx, bool split = false, ThreadPool* pool = nullptr);
  /// quantize() in two steps, so a row-wise step that writes x can quantize each row range as
  /// soon as it is done (one parallel region instead of two): prepare() once, then
  /// quantize_range() over ranges that cover [0, m) once, on any threads.
  void prepare(const float* x, std::size_t m, std::size_t k, std::size_t ldx, bool split = false);
  void quantize_range(const kernels::KernelTable& kt, std::size_t i0, std::size_t i1);
  /// After prepare(): quantizes blocks [b0, b1) of row i only (columns b0 * 32 up to b1 * 32 or
  /// k), so a task that wrote part of a row can quantize that part (the bits of quantize_range).
  void quantize_blocks(const kernels::KernelTable& kt, std::size_t i, std::size_t b0,
                       std::size_t b1);
  /// The integer rows: m of them, or 2m (first quantization, then residual) when split.
  const kernels::QuantizedRows& rows() const { return rows_; }
  bool split() const { return split_; }
  std::size_t tokens() const { return split_ ? rows_.rows / 2 : rows_.rows; }  ///< m
  const float* source() const { return x_; }  ///< the float rows (for non-quantized weights)
  std::size_t k() const { return k_; }
  std::size_t ldx() const { return ldx_; }
  /// Reserves room for m rows of length k (to size buffers once per session), split or not.
  void reserve(std::size_t m, std::size_t k, bool split = false);

 private:
  // residual_[i][j0, j1) = what the first quantization of row i missed there (x - q * d, q * d as
  // the kernels dequantize it; KernelTable::act_residual); j0 on a block boundary.
  void residual(const kernels::KernelTable& kt, std::size_t i, std::size_t j0, std::size_t j1);

  std::vector<std::int8_t> q_;
  std::vector<float> d_;
  std::vector<std::int32_t> s_;
  std::vector<float> residual_;
  kernels::QuantizedRows rows_{};
  bool split_ = false;
  const float* x_ = nullptr;
  std::size_t k_ = 0, ldx_ = 0;
};

/// One product of a fused matmul: y (row stride ldy) = w · act.
struct Product {
  const detail::Matrix* w = nullptr;
  float* y = nullptr;
  std::size_t ldy = 0;
};

/// Products reading the same activations (q/k/v, gate/up), their integer-kernel bands in one
/// parallel region, so a decode step pays one fork/join per input instead of one per matrix.
void matmul(const kernels::KernelTable& kt, ThreadPool& pool, std::span<const Product> products,
            const QuantizedActivations& act, std::vector<float>& scratch);

/// y[m][n] (row stride ldy) = W · act[m] for every activation row, using `pool`.
void matmul(const kernels::KernelTable& kt, ThreadPool& pool, const detail::Matrix& w,
            const QuantizedActivations& act, float* y, std::size_t ldy,
            std::vector<float>& scratch);

}  // namespace qlm::ops
