// Reference quantizers: round-to-nearest with a per-block scale (Q8_0 / Q4_0 style), written for
// clarity; kernels/ and the tests compare against these.
#include "qlm/quant/quantize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qlm/detail/half.hpp"

namespace qlm::quant {
namespace {

// Scale of one block of up to 32 values, already rounded to f16 so quantization sees the scale the
// kernels will use. Q8 is symmetric (d = amax / 127); Q4 maps the largest-magnitude value to -8 (so
// its sign decides the direction) as llama.cpp's Q4_0 does.
float block_scale(DType t, const float* x, std::size_t n) {
  float amax = 0.0f, max = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  const float d = t == DType::Q8 ? amax / 127.0f : max / -8.0f;
  return detail::f16_to_f32(detail::f32_to_f16(d));
}

int quantize_value(DType t, float x, float inv_d) {
  const float v = x * inv_d;
  if (t == DType::Q8) return std::clamp(static_cast<int>(std::nearbyint(v)), -127, 127);
  return std::clamp(static_cast<int>(std::nearbyint(v)) + 8, 0, 15);
}

void quantize_tile(DType t, std::span<const float> src, const TileGeometry& geo, std::size_t g,
                   std::size_t b, std::uint8_t* quants, std::uint8_t* scales) {
  for (std::size_t r = 0; r < kRowGroup; ++r) {
    const std::size_t row = g * kRowGroup + r;
    float x[kBlockK] = {};
    const std::size_t c0 = b * kBlockK;
    const std::size_t n = row < geo.rows ? std::min(kBlockK, geo.k - c0) : 0;
    if (n > 0) std::memcpy(x, src.data() + row * geo.k + c0, n * sizeof(float));
    const float d = block_scale(t, x, kBlockK);
    const std::uint16_t d16 = detail::f32_to_f16(d);
    std::memcpy(scales + 2 * r, &d16, 2);
    const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
    for (std::size_t c = 0; c < kBlockK; ++c) {
      const int q = quantize_value(t, x[c], inv_d);
      if (t == DType::Q8) {
        quants[q8_index(r, c)] = static_cast<std::uint8_t>(q + 128);
      } else {
        std::uint8_t& byte = quants[q4_index(r, c)];
        byte = static_cast<std::uint8_t>(q4_high(c) ? (byte & 0x0f) | (q << 4) : (byte & 0xf0) | q);
      }
    }
  }
}

}  // namespace

void quantize_matrix(DType t, std::span<const float> src, std::size_t rows, std::size_t k,
                     std::span<std::uint8_t> out) {
  const TileGeometry geo(t, rows, k);
  for (std::size_t g = 0; g < geo.groups; ++g) {
    for (std::size_t b = 0; b < geo.blocks; ++b) {
      quantize_tile(t, src, geo, g, b, out.data() + geo.quant_offset(g, b),
                    out.data() + geo.scale_offset(g, b));
    }
  }
}

void dequantize_row(DType t, std::span<const std::uint8_t> data, std::size_t rows, std::size_t k,
                    std::size_t row, std::span<float> out) {
  if (!is_quantized(t)) {
    const std::size_t elem = t == DType::F32 ? 4 : 2;
    const std::uint8_t* p = data.data() + row * k * elem;
    for (std::size_t c = 0; c < k; ++c) {
      if (t == DType::F32) {
        std::memcpy(&out[c], p + 4 * c, 4);
      } else {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * c, 2);
        out[c] = t == DType::F16 ? detail::f16_to_f32(h) : detail::bf16_to_f32(h);
      }
    }
    return;
  }
  const TileGeometry geo(t, rows, k);
  const std::size_t g = row / kRowGroup, r = row % kRowGroup;
  for (std::size_t b = 0; b < geo.blocks; ++b) {
    const std::uint8_t* quants = data.data() + geo.quant_offset(g, b);
    std::uint16_t d16;
    std::memcpy(&d16, data.data() + geo.scale_offset(g, b) + 2 * r, 2);
    const float d = detail::f16_to_f32(d16);
    const std::size_t c0 = b * kBlockK;
    const std::size_t n = std::min(kBlockK, k - c0);
    for (std::size_t c = 0; c < n; ++c) {
      int q;
      if (t == DType::Q8) {
        q = static_cast<int>(quants[q8_index(r, c)]) - 128;
      } else {
        const std::uint8_t byte = quants[q4_index(r, c)];
        q = static_cast<int>(q4_high(c) ? byte >> 4 : byte & 0x0f) - 8;
      }
      out[c0 + c] = static_cast<float>(q) * d;
    }
  }
}

}  // namespace qlm::quant
