// The matmul driver: quantizes activation rows once, splits a weight matrix's 16-row groups into
// fixed chunks for the thread pool, and calls the ISA's kernel. Non-quantized weights (f32, f16,
// bf16) take a row-dequantizing float path.
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
  void quantize(const kernels::KernelTable& kt, const float* x, std::size_t m, std::size_t k,
                std::size_t ldx);
  const kernels::QuantizedRows& rows() const { return rows_; }
  const float* source() const { return x_; }  ///< the float rows (for non-quantized weights)
  std::size_t k() const { return k_; }
  std::size_t ldx() const { return ldx_; }
  /// Reserves room for m rows of length k (to size buffers once per session).
  void reserve(std::size_t m, std::size_t k);

 private:
  std::vector<std::int8_t> q_;
  std::vector<float> d_;
  std::vector<std::int32_t> s_;
  kernels::QuantizedRows rows_{};
  const float* x_ = nullptr;
  std::size_t k_ = 0, ldx_ = 0;
};

/// One product of a fused matmul: y (row stride ldy) = w · act.
struct Product {
  const detail::Matrix* w = nullptr;
  float* y = nullptr;
  std::size_t ldy = 0;
};

/// Up to 3 products reading the same activations (q/k/v, gate/up) in one parallel region, so a
/// decode step pays one fork/join per input instead of one per matrix.
void matmul(const kernels::KernelTable& kt, ThreadPool& pool, std::span<const Product> products,
            const QuantizedActivations& act, std::vector<float>& scratch);

/// y[m][n] (row stride ldy) = W · act[m] for every activation row, using `pool`.
void matmul(const kernels::KernelTable& kt, ThreadPool& pool, const detail::Matrix& w,
            const QuantizedActivations& act, float* y, std::size_t ldy,
            std::vector<float>& scratch);

}  // namespace qlm::ops
