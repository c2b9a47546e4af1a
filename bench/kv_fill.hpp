// Benchmark inputs: keys and values drawn from a standard normal, stored as f32 or f16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>

#include "qlm/detail/half.hpp"
#include "qlm/kv_type.hpp"

namespace qlm::bench {

/// Fills `kv` with standard normal values stored as `type` (its size a multiple of the element).
inline void fill_normal(std::span<std::byte> kv, KvType type, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  const std::size_t esize = type == KvType::F16 ? 2 : 4;
  for (std::size_t i = 0; i < kv.size() / esize; ++i) {
    const float x = nd(rng);
    if (type == KvType::F16) {
      const std::uint16_t h = qlm::detail::f32_to_f16(x);
      std::memcpy(kv.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(kv.data() + 4 * i, &x, 4);
    }
  }
}

}  // namespace qlm::bench
