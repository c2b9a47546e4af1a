// Internal: the kernels' view of the quantized weight types (Q8, Q4, Q4NL, Q5). The tile geometry
// itself has one home, qlm/format/dtype.hpp (kRowGroup, kBlockK, tile_quant_bytes, kTileScaleBytes)
// and qlm/quant/layout.hpp (quant::TileGeometry and the byte layout inside a tile); this header
// adds what every ISA's GEMM needs on top: the geometry as a GEMM reads it, the cache blocking, the
// zero point and the nibble lookup tables. The GEMM templates take the weight type as a DType.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "kernel_table.hpp"
#include "qlm/quant/layout.hpp"  // quant::TileGeometry, and DType, kRowGroup, kBlockK with it

namespace qlm::kernels::detail {

static_assert(kActBlock == kBlockK, "an activation block must match a weight tile's K");

/// A GEMM's view of a quantized [n, k] weight matrix: quant::TileGeometry's numbers, with the
/// byte offset of the scales precomputed. Tile (g, b)'s quants start at (g * blocks + b) * tile,
/// its kRowGroup f16 scales at scales + (g * blocks + b) * kTileScaleBytes.
struct Geometry {
  std::size_t n;       ///< logical rows
  std::size_t blocks;  ///< blocks of kBlockK along K
  std::size_t groups;  ///< row groups of kRowGroup
  std::size_t tile;    ///< quant bytes per tile (tile_quant_bytes)
  std::size_t scales;  ///< byte offset of the scales (after all tiles' quants)

  constexpr explicit Geometry(const quant::TileGeometry& t) noexcept
      : n(t.rows),
        blocks(t.blocks),
        groups(t.groups),
        tile(t.quant_bytes),
        scales(t.scale_offset(0, 0)) {}
  constexpr Geometry(DType type, std::size_t rows, std::size_t k) noexcept
      : Geometry(quant::TileGeometry(type, rows, k)) {}
};

/// Where a Q5 tile's fifth-bit plane starts: byte kQ5Bits + 4r + j holds, in bit i, the fifth bit
/// of (row r, column 4i + j) (quant/layout.hpp).
inline constexpr std::size_t kQ5Bits = quant::q5_bit_index(0, 0);
/// Row groups per cache block of a GEMM: ~256 KiB of a group range's quants and scales stay in L2
/// while every activation row passes over them (the same blocking on every ISA).
constexpr std::size_t l2_chunk_groups(std::size_t blocks, std::size_t tile) noexcept {
  const std::size_t group_bytes = std::max<std::size_t>(1, blocks * (tile + kTileScaleBytes));
  return std::max<std::size_t>(1, (std::size_t{256} << 10) / group_bytes);
}
/// How far ahead of the GEMV's reads its quant lines are asked for, into L2 (AVX-512, AVX2): 2 KiB
/// kept too few lines in flight on a Zen 5 core (bench/RESULTS.md, session 31).
inline constexpr std::size_t kGemvPrefetchBytes = 4096;
/// Zero point of the unsigned weight byte u (the weight code is u - zp): Q8, Q4NL and Q5 store or
/// decode to u = code + 128, Q4 nibbles are code + 8.
constexpr std::int32_t zero_point(DType t) noexcept {
  return t == DType::Q4 ? 8 : 128;
}
/// True if the weight codes need the int8 (sign-trick / signed dot product) arithmetic of Q8.
/// Q4NL has Q4's tiles, but a nibble is decoded by one table lookup into an int8 level (or level +
/// 128), after which the Q8 arithmetic applies; Q5 is decoded the same way (nibble - 16, or + 112)
/// and gets 16 added where its fifth bit is set.
constexpr bool int8_codes(DType t) noexcept {
  return t != DType::Q4;
}

/// Q4NL nibble -> signed level, and nibble -> level + 128 (unsigned, for u8 x s8 instructions).
inline constexpr std::array<std::int8_t, 16> kQ4nlSigned = quant::kQ4nlLevels;
inline constexpr std::array<std::uint8_t, 16> kQ4nlBiased = [] {
  std::array<std::uint8_t, 16> t{};
  for (std::size_t i = 0; i < 16; ++i) t[i] = static_cast<std::uint8_t>(kQ4nlSigned[i] + 128);
  return t;
}();
/// Q5's low nibble -> its code without the fifth bit (nibble - 16), signed and + 128; the fifth bit
/// then adds 16.
inline constexpr std::array<std::int8_t, 16> kQ5Signed = [] {
  std::array<std::int8_t, 16> t{};
  for (std::size_t i = 0; i < 16; ++i) t[i] = static_cast<std::int8_t>(static_cast<int>(i) - 16);
  return t;
}();
inline constexpr std::array<std::uint8_t, 16> kQ5Biased = [] {
  std::array<std::uint8_t, 16> t{};
  for (std::size_t i = 0; i < 16; ++i) t[i] = static_cast<std::uint8_t>(i + 112);
  return t;
}();

}  // namespace qlm::kernels::detail
