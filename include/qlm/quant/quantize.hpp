// Reference (scalar) quantizers and dequantizers for the Q8/Q4 tile layout; shared by the converter
// and the tests so the two cannot drift.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "qlm/dtype.hpp"
#include "qlm/quant/layout.hpp"

namespace qlm::quant {

/// Quantizes a row-major [rows, k] f32 matrix into the Q8 or Q4 tile layout.
/// `out` must hold TileGeometry(t, rows, k).total_bytes(). Inputs must be finite with
/// |x| <= 65504 * max_level(t), so every block scale fits an f16 (the converter checks this).
void quantize_matrix(DType t, std::span<const float> src, std::size_t rows, std::size_t k,
                     std::span<std::uint8_t> out);

/// Dequantizes logical row `row` of a [rows, k] tensor of any type into `out` (k floats).
void dequantize_row(DType t, std::span<const std::uint8_t> data, std::size_t rows, std::size_t k,
                    std::size_t row, std::span<float> out);

/// Largest |x| / scale that still fits the type's range: 127 (Q8) or 8 (Q4).
constexpr float max_level(DType t) noexcept {
  return t == DType::Q8 ? 127.0f : 8.0f;
}

}  // namespace qlm::quant
