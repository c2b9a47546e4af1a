// How the fast path quantizes a matrix's inputs: one int8 block per 32 values, or two (the second
// quantizes what the first missed, ~15 bits in all) at twice the integer work.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace qlm {

/// Activation precision of the integer matmuls (see docs/quantization.md, "Activations").
enum class ActivationPrecision : std::uint8_t {
  /// Int8x2 for inputs of q8 weights (whose own error is far below int8 activations'), int8 for
  /// 4-bit weights (where a second pass changes nothing measurable).
  Auto,
  Int8,    ///< one int8 quantization per input: fastest
  Int8x2,  ///< int8 plus an int8 residual for every quantized matrix: 2x integer work
};

constexpr std::string_view to_string(ActivationPrecision p) noexcept {
  return p == ActivationPrecision::Int8     ? "int8"
         : p == ActivationPrecision::Int8x2 ? "int8x2"
                                            : "auto";
}

/// Parses auto|int8|int8x2; nullopt otherwise.
constexpr std::optional<ActivationPrecision> parse_activation_precision(
    std::string_view s) noexcept {
  if (s == "auto") return ActivationPrecision::Auto;
  if (s == "int8") return ActivationPrecision::Int8;
  if (s == "int8x2") return ActivationPrecision::Int8x2;
  return std::nullopt;
}

}  // namespace qlm
