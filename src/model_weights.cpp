// Matrix helpers that look through a matrix's row bands.
#include "model_weights.hpp"

#include <algorithm>

#include "qlm/quant/quantize.hpp"

namespace qlm::detail {

void Matrix::dequantize_row(std::uint32_t r, std::span<float> out) const {
  // Bands are few (one for most matrices): a linear search beats anything cleverer.
  for (const MatrixBand& b : bands) {
    if (r - b.row0 < b.rows) {
      quant::dequantize_row(b.dtype, b.data, b.rows, k, r - b.row0, out.first(k));
      return;
    }
  }
}

bool Matrix::has(DType t) const {
  return std::any_of(bands.begin(), bands.end(), [t](const MatrixBand& b) { return b.dtype == t; });
}

bool Matrix::any_quantized() const {
  return std::any_of(bands.begin(), bands.end(),
                     [](const MatrixBand& b) { return is_quantized(b.dtype); });
}

}  // namespace qlm::detail
