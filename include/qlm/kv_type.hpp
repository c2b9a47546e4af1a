// KvType: the element type of cached keys and values, the one spelling used from the API down to
// the attention kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qlm {

/// Element type of cached keys/values: F32, or F16 (IEEE binary16 bits, written with
/// round-to-nearest-even; half the bytes, so half the memory traffic of long-context attention).
enum class KvType : std::uint8_t { F32, F16 };

/// Bytes per cached element.
constexpr std::size_t kv_type_size(KvType t) noexcept {
  return t == KvType::F16 ? 2 : 4;
}
/// "f32" or "f16".
constexpr std::string_view to_string(KvType t) noexcept {
  return t == KvType::F16 ? "f16" : "f32";
}
/// Parses "f32" / "f16" (exactly as to_string writes them); nullopt otherwise.
constexpr std::optional<KvType> parse_kv_type(std::string_view s) noexcept {
  if (s == "f32") return KvType::F32;
  if (s == "f16") return KvType::F16;
  return std::nullopt;
}

}  // namespace qlm
