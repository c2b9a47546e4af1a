// Internal: which quantized weight type a GEMM template instance reads (Q8, Q4, Q4NL or Q5), and
// the per-type constants shared by every ISA: tile size, zero point and the nibble lookup tables.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "qlm/quant/layout.hpp"

namespace qlm::kernels::detail {

/// Weight type of a GEMM instance. Q4NL has Q4's tiles; a nibble is decoded by one table lookup
/// into an int8 level (or level + 128), after which the Q8 arithmetic applies. Q5 is decoded the
/// same way (nibble - 16, or + 112) and gets 16 added where its fifth bit is set.
enum class Wfmt : std::uint8_t { Q8, Q4, Q4nl, Q5 };

/// Quant bytes of one 16 x 32 tile (Q5: Q4's 256 nibble bytes, then the 64-byte fifth-bit plane).
constexpr std::size_t tile_bytes(Wfmt f) noexcept {
  return f == Wfmt::Q8 ? 512 : f == Wfmt::Q5 ? 320 : 256;
}
/// Where a Q5 tile's fifth-bit plane starts: byte kQ5Bits + 4r + j holds, in bit i, the fifth bit
/// of (row r, column 4i + j) (quant/layout.hpp).
inline constexpr std::size_t kQ5Bits = quant::q5_bit_index(0, 0);
/// Row groups per cache block of a GEMM: ~256 KiB of a group range's quants and scales stay in L2
/// while every activation row passes over them (the same blocking on every ISA).
constexpr std::size_t l2_chunk_groups(std::size_t blocks, std::size_t tile) noexcept {
  const std::size_t group_bytes = std::max<std::size_t>(1, blocks * (tile + 32));
  return std::max<std::size_t>(1, (std::size_t{256} << 10) / group_bytes);
}
/// Zero point of the unsigned weight byte u (the weight code is u - zp): Q8, Q4NL and Q5 store or
/// decode to u = code + 128, Q4 nibbles are code + 8.
constexpr std::int32_t zero_point(Wfmt f) noexcept {
  return f == Wfmt::Q4 ? 8 : 128;
}
/// True if the weight codes need the int8 (sign-trick / signed dot product) arithmetic of Q8.
constexpr bool int8_codes(Wfmt f) noexcept {
  return f != Wfmt::Q4;
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
