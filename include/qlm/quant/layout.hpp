// Where each weight of a Q8, Q4, Q4NL or Q5 tensor lives: the row-interleaved tile layout the
// kernels read.
//
// A [N, K] matrix is cut into tiles of 16 rows x 32 columns (N padded to 16, K padded to 32;
// padding holds zero weights with scale 0, so it contributes exactly nothing). All tiles' quantized
// bytes come first, tile (g, b) at (g * blocks + b) * tile_quant_bytes; then all tiles' scales, 16
// f16 each.
//
// Inside a tile, byte order follows the integer dot-product instructions (vpdpbusd, sdot): 4
// consecutive K values of one row form a 32-bit lane, and lane r is row r. One 64-byte vector thus
// holds rows 0..15 for 4 values of K, and a broadcast of 4 activation bytes multiplies all 16 rows
// at once, leaving one output row per lane (no horizontal reductions in GEMV).
//   Q8: byte kg*64 + r*4 + j = q(row r, col 4*kg + j) + 128 (stored unsigned; q in [-127, 127]).
//   Q4: byte  c*64 + r*4 + j = q(row r, col 8*c + j) | q(row r, col 8*c + 4 + j) << 4  (q in 0..15,
//       value (q - 8) * d). One AND and one shift recover two 64-byte lanes of K.
//   Q4NL: as Q4, but the value is kQ4nlLevels[q] * d: one table lookup (vpshufb, tbl) per 64
//       bytes turns nibbles into int8 levels, then the Q8 arithmetic applies.
//   Q5: 320 bytes: Q4's 256 bytes hold each code's low nibble (code in 0..31, value
//       (code - 16) * d), then byte 256 + r*4 + j holds in bit i the fifth bit of (row r, col
//       4*i + j): bit i completes the 64-byte lane of K values 4i..4i+3 (one mask test per lane).
// Weights are unsigned with a zero point (128 or 8; Q4NL and Q5 decode to level + 128 and code +
// 112) so that u8 x s8 instructions apply directly; the zero point times the activation block's
// sum is subtracted once per block.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "qlm/format/dtype.hpp"

namespace qlm::quant {

/// Q4NL's code book: the 16 levels (times 1/127) minimizing the mean squared error of 32-value
/// blocks of normally distributed weights scaled so the block's extreme is -1 (Lloyd's algorithm;
/// see docs/quantization.md). Dense near zero, where most weights are. Zero itself is not a level
/// (forcing one measurably hurt); all-zero blocks still decode exactly (scale 0), and padding
/// columns meet zero activations. Part of the format.
inline constexpr std::array<std::int8_t, 16> kQ4nlLevels{-127, -103, -84, -68, -53, -39, -25, -12,
                                                         1,    14,   27,  41,  55,  72,  90,  112};

/// Geometry of a quantized [rows, k] tensor.
struct TileGeometry {
  std::size_t rows = 0;         ///< logical rows (N)
  std::size_t k = 0;            ///< logical columns (K)
  std::size_t groups = 0;       ///< row groups of 16
  std::size_t blocks = 0;       ///< blocks of 32 along K
  std::size_t quant_bytes = 0;  ///< bytes of quantized values per tile (512, 320 or 256)

  constexpr TileGeometry(DType t, std::size_t n, std::size_t kk) noexcept
      : rows(n),
        k(kk),
        groups((n + kRowGroup - 1) / kRowGroup),
        blocks((kk + kBlockK - 1) / kBlockK),
        quant_bytes(tile_quant_bytes(t)) {}

  constexpr std::size_t tiles() const noexcept { return groups * blocks; }
  /// Byte offset of tile (g, b)'s quantized values.
  constexpr std::size_t quant_offset(std::size_t g, std::size_t b) const noexcept {
    return (g * blocks + b) * quant_bytes;
  }
  /// Byte offset of tile (g, b)'s 16 f16 scales.
  constexpr std::size_t scale_offset(std::size_t g, std::size_t b) const noexcept {
    return tiles() * quant_bytes + (g * blocks + b) * kTileScaleBytes;
  }
  constexpr std::size_t padded_k() const noexcept { return blocks * kBlockK; }
  constexpr std::size_t total_bytes() const noexcept {
    return tiles() * (quant_bytes + kTileScaleBytes);
  }
};

/// Byte index inside a Q8 tile of (row r, column c) of the tile.
constexpr std::size_t q8_index(std::size_t r, std::size_t c) noexcept {
  return (c / 4) * 64 + r * 4 + (c % 4);
}

/// Byte index inside a Q4 tile of (row r, column c), and whether it is the high nibble.
constexpr std::size_t q4_index(std::size_t r, std::size_t c) noexcept {
  return (c / 8) * 64 + r * 4 + (c % 4);
}
constexpr bool q4_high(std::size_t c) noexcept {
  return (c % 8) >= 4;
}
/// Byte index inside a Q5 tile of (row r, column c)'s fifth bit, and the bit.
constexpr std::size_t q5_bit_index(std::size_t r, std::size_t c) noexcept {
  return 256 + r * 4 + (c % 4);
}
constexpr unsigned q5_bit(std::size_t c) noexcept {
  return static_cast<unsigned>(c / 4);
}

}  // namespace qlm::quant
