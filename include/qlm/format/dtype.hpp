// Tensor element types of the .qlm format and the byte size of a tensor of each type.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace qlm {

/// Storage type of a tensor in a .qlm file (the numeric values are part of the format).
enum class DType : std::uint8_t {
  F32 = 0,
  F16 = 1,
  BF16 = 2,
  Q8 = 3,  ///< 8-bit blocks of 32 along K, 16 rows interleaved (see quant/layout.hpp), 8.5 bpw
  Q4 = 4,  ///< 4-bit blocks of 32 along K, 16 rows interleaved (see quant/layout.hpp), 4.5 bpw
  /// Q4's layout, but each nibble indexes a fixed 16-level non-linear code book (kQ4nlLevels in
  /// quant/layout.hpp) that fits weight distributions better than evenly spaced levels; 4.5 bpw.
  Q4NL = 5,
  /// 5-bit blocks of 32 along K: Q4's nibbles plus a 64-byte plane of fifth bits per tile (see
  /// quant/layout.hpp), value (q - 16) * d; 5.5 bpw. Between q4 and q8 for the mixed recipe.
  Q5 = 6,
};

inline constexpr std::size_t kBlockK = 32;    ///< weights per quantization block (along K)
inline constexpr std::size_t kRowGroup = 16;  ///< rows interleaved in a quantized tensor

/// Lower-case type name as used on the command line ("f32", "q4", …).
constexpr std::string_view to_string(DType t) noexcept {
  constexpr std::array<std::string_view, 7> names{"f32", "f16", "bf16", "q8", "q4", "q4nl", "q5"};
  const auto i = static_cast<std::size_t>(t);
  return i < names.size() ? names[i] : "?";
}

/// Parses a type name; nullopt if unknown.
constexpr std::optional<DType> parse_dtype(std::string_view s) noexcept {
  for (std::uint8_t i = 0; i <= static_cast<std::uint8_t>(DType::Q5); ++i) {
    if (to_string(static_cast<DType>(i)) == s) return static_cast<DType>(i);
  }
  return std::nullopt;
}

/// True if the type is a block-quantized, row-interleaved matrix type.
constexpr bool is_quantized(DType t) noexcept {
  return t == DType::Q8 || t == DType::Q4 || t == DType::Q4NL || t == DType::Q5;
}

/// Rounds n up to a multiple of m (m > 0).
constexpr std::uint64_t round_up(std::uint64_t n, std::uint64_t m) noexcept {
  return (n + m - 1) / m * m;
}

/// Bytes of quantized values in one (kRowGroup rows x kBlockK) tile: Q8 512, Q5 320 (Q4's nibbles
/// and a 64-byte plane of fifth bits), Q4 and Q4NL 256. The one place a weight type's tile size is
/// stated: quant::TileGeometry and the kernels derive theirs from it.
constexpr std::size_t tile_quant_bytes(DType t) noexcept {
  return t == DType::Q8 ? 512 : t == DType::Q5 ? 320 : 256;
}
/// Bytes of scales in one tile: 16 f16 scales.
inline constexpr std::size_t kTileScaleBytes = kRowGroup * 2;

/// Bytes a tensor of this type and shape occupies; nullopt if the shape is invalid for the type
/// or the size overflows. Quantized types need 2 dimensions [rows, K].
constexpr std::optional<std::uint64_t> tensor_bytes(DType t,
                                                    std::span<const std::uint64_t> shape) noexcept {
  if (shape.empty() || shape.size() > 4) return std::nullopt;
  constexpr std::uint64_t kLimit = std::uint64_t{1} << 48;  // 256 TiB: nothing real is larger
  std::uint64_t count = 1;
  for (std::uint64_t d : shape) {
    if (d == 0 || d > kLimit || count > kLimit / d) return std::nullopt;
    count *= d;
  }
  switch (t) {
    case DType::F32:
      return count * 4;
    case DType::F16:
    case DType::BF16:
      return count * 2;
    case DType::Q8:
    case DType::Q4:
    case DType::Q4NL:
    case DType::Q5: {
      if (shape.size() != 2) return std::nullopt;
      const std::uint64_t tiles =
          round_up(shape[0], kRowGroup) / kRowGroup * (round_up(shape[1], kBlockK) / kBlockK);
      return tiles * (tile_quant_bytes(t) + kTileScaleBytes);
    }
  }
  return std::nullopt;
}

}  // namespace qlm
