// Scalar reference kernels (Isa::Scalar): run on any CPU and define the results the SIMD kernels
// are tested against.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "detail/act_residual.hpp"
#include "detail/tables.hpp"
#include "detail/weight_format.hpp"
#include "qlm/detail/half.hpp"

namespace qlm::kernels {
namespace {

void quantize_rows(const float* x, std::size_t m, std::size_t k, std::size_t ldx, std::int8_t* q,
                   float* d, std::int32_t* s) {
  const std::size_t blocks = (k + kActBlock - 1) / kActBlock;
  for (std::size_t row = 0; row < m; ++row) {
    for (std::size_t b = 0; b < blocks; ++b) {
      float v[kActBlock] = {};
      const std::size_t n = std::min(kActBlock, k - b * kActBlock);
      std::memcpy(v, x + row * ldx + b * kActBlock, n * sizeof(float));
      float amax = 0.0f;
      for (float f : v) amax = std::max(amax, std::fabs(f));
      std::int8_t* qb = q + (row * blocks + b) * kActBlock;
      // d and 1/d are computed with exactly these two IEEE operations on every ISA, and
      // nearbyint rounds half to even like cvtps2dq, so q, d and s match bit for bit.
      const float db = amax > kZeroBlockAmax ? amax / 127.0f : 0.0f;
      const float inv = db != 0.0f ? 1.0f / db : 0.0f;
      std::int32_t sum = 0;
      for (std::size_t i = 0; i < kActBlock; ++i) {
        const float r = std::nearbyint(v[i] * inv);
        const int qi = static_cast<int>(std::clamp(r, -127.0f, 127.0f));
        qb[i] = static_cast<std::int8_t>(qi);
        sum += qi;
      }
      d[row * blocks + b] = db;
      s[row * blocks + b] = sum;
    }
  }
}

// Row r's f16 scale among the kRowGroup scales of a tile at byte `offset`.
float scale_at(const std::uint8_t* w, std::size_t offset, std::size_t r) {
  std::uint16_t h;
  std::memcpy(&h, w + offset + 2 * r, 2);
  return qlm::detail::f16_to_f32(h);
}

// Q4NL decodes a nibble to u = level + 128 and Q5 a nibble and its fifth bit to u = code + 112;
// then both are Q8 (zero point 128).
template <DType F>
void gemm(const std::uint8_t* w, std::size_t n, std::size_t k, const QuantizedRows& a, float* y,
          std::size_t ldy, std::size_t g0, std::size_t g1) {
  constexpr std::int32_t zp = detail::zero_point(F);
  const quant::TileGeometry geo(F, n, k);
  const std::size_t blocks = geo.blocks;
  const std::size_t r1 = std::min(g1 * kRowGroup, n);
  for (std::size_t m = 0; m < a.rows; ++m) {
    const std::int8_t* q = a.q + m * blocks * kActBlock;
    for (std::size_t row = g0 * kRowGroup; row < r1; ++row) {
      const std::size_t g = row / kRowGroup, r = row % kRowGroup;
      float acc = 0.0f;
      for (std::size_t b = 0; b < blocks; ++b) {
        const std::uint8_t* t = w + geo.quant_offset(g, b);
        const std::int8_t* qb = q + b * kActBlock;
        std::int32_t isum = 0;
        for (std::size_t c = 0; c < kActBlock; ++c) {
          int u;
          if constexpr (F == DType::Q8) {
            u = t[quant::q8_index(r, c)];
          } else {
            const std::uint8_t byte = t[quant::q4_index(r, c)];
            u = quant::q4_high(c) ? byte >> 4 : byte & 0x0f;
            if constexpr (F == DType::Q4NL) u = detail::kQ4nlBiased[u];
            if constexpr (F == DType::Q5) {
              const int fifth = (t[quant::q5_bit_index(r, c)] >> quant::q5_bit(c)) & 1;
              u = detail::kQ5Biased[u] + 16 * fifth;
            }
          }
          isum += u * qb[c];
        }
        isum -= zp * a.s[m * blocks + b];
        const float sc = scale_at(w, geo.scale_offset(g, b), r) * a.d[m * blocks + b];
        acc += static_cast<float>(isum) * sc;
      }
      y[m * ldy + row] = acc;
    }
  }
}

void rmsnorm(float* out, const float* x, const float* w, std::size_t n, float eps) {
  float ss = 0.0f;
  for (std::size_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void layernorm(float* out, const float* x, const float* w, const float* b, std::size_t n,
               float eps) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(n);
  float var = 0.0f;
  for (std::size_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float scale = 1.0f / std::sqrt(var / static_cast<float>(n) + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = (x[i] - mean) * scale * w[i] + b[i];
}

void softmax(float* x, std::size_t n) {
  float mx = x[0];
  for (std::size_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (std::size_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(float* gate, const float* up, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void gelu_mul(float* gate, const float* up, std::size_t n) {
  constexpr float kMinus2SqrtTwoOverPi = -1.5957691216057308f, kCubic = 0.044715f;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = gate[i];
    const float g = v / (1.0f + std::exp(kMinus2SqrtTwoOverPi * std::fma(kCubic * v * v, v, v)));
    gate[i] = up != nullptr ? g * up[i] : g;
  }
}

void rope(float* x, const float* cos, const float* sin, std::size_t head_dim) {
  const std::size_t half = head_dim / 2;
  for (std::size_t i = 0; i < half; ++i) {
    const float x0 = x[i], x1 = x[i + half];
    x[i] = x0 * cos[i] - x1 * sin[i];
    x[i + half] = x1 * cos[i] + x0 * sin[i];
  }
}

void add(float* y, const float* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += x[i];
}

float dot(const float* a, const float* b, std::size_t n) {
  float acc = 0.0f;
  for (std::size_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

void axpy(float* y, float alpha, const float* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void f16_to_f32(const std::uint16_t* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = qlm::detail::f16_to_f32(x[i]);
}

void f32_to_f16(const float* x, std::uint16_t* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = qlm::detail::f32_to_f16(x[i]);
}

inline float element(float x) {
  return x;
}
inline float element(std::uint16_t h) {
  return qlm::detail::f16_to_f32(h);
}

template <class T>
void attn_heads(const float* q, std::size_t g, std::size_t hd, const T* k, std::size_t first,
                const T* v, std::size_t n, float scale, float* m, float* l, float* acc) {
  for (std::size_t j = 0; j < g; ++j) {
    float s[kAttnBlock];
    float block_max = -INFINITY;
    for (std::size_t t = 0; t < n; ++t) {
      float d = 0.0f;
      for (std::size_t i = 0; i < hd; ++i) {
        d += q[j * hd + i] * element(k[i * kAttnBlock + first + t]);  // dims-major keys
      }
      s[t] = d * scale;
      block_max = std::max(block_max, s[t]);
    }
    float* a = acc + j * hd;
    if (block_max > m[j]) {
      const float c = std::exp(m[j] - block_max);  // exp(-inf) = 0 on the first block
      l[j] *= c;
      for (std::size_t i = 0; i < hd; ++i) a[i] *= c;
      m[j] = block_max;
    }
    for (std::size_t t = 0; t < n; ++t) {
      s[t] = std::exp(s[t] - m[j]);
      l[j] += s[t];
    }
    for (std::size_t i = 0; i < hd; ++i) {
      float x = a[i];
      for (std::size_t t = 0; t < n; ++t) x += s[t] * element(v[t * hd + i]);
      a[i] = x;
    }
  }
}

void attn_block(const float* q, std::size_t g, std::size_t hd, const void* k, std::size_t first,
                const void* v, KvType type, std::size_t n, float scale, float* m, float* l,
                float* acc, const void* /*next_k*/, const void* /*next_v*/) {
  if (type == KvType::F16) {
    attn_heads(q, g, hd, static_cast<const std::uint16_t*>(k), first,
               static_cast<const std::uint16_t*>(v), n, scale, m, l, acc);
  } else {
    attn_heads(q, g, hd, static_cast<const float*>(k), first, static_cast<const float*>(v), n,
               scale, m, l, acc);
  }
}

// One weight of a float row, widened to f32.
float float_weight(const std::uint8_t* row, DType type, std::size_t c) {
  if (type == DType::F32) {
    float f;
    std::memcpy(&f, row + 4 * c, 4);
    return f;
  }
  std::uint16_t h;
  std::memcpy(&h, row + 2 * c, 2);
  return type == DType::F16 ? qlm::detail::f16_to_f32(h) : qlm::detail::bf16_to_f32(h);
}

// The plain dot product of each pair, in order: the twin the vector kernels are checked against.
void gemm_float(const std::uint8_t* w, DType type, std::size_t k, const float* x, std::size_t m,
                std::size_t ldx, float* y, std::size_t ldy, std::size_t r0, std::size_t r1) {
  const std::size_t elem = type == DType::F32 ? 4 : 2;
  for (std::size_t r = r0; r < r1; ++r) {
    const std::uint8_t* row = w + r * k * elem;
    for (std::size_t i = 0; i < m; ++i) {
      float sum = 0.0f;
      for (std::size_t c = 0; c < k; ++c) sum += float_weight(row, type, c) * x[i * ldx + c];
      y[i * ldy + r] = sum;
    }
  }
}

}  // namespace

namespace detail {
const KernelTable& scalar_table() noexcept {
  static const KernelTable table{Isa::Scalar,
                                 quantize_rows,
                                 gemm<DType::Q8>,
                                 gemm<DType::Q4>,
                                 gemm<DType::Q4NL>,
                                 gemm<DType::Q5>,
                                 rmsnorm,
                                 softmax,
                                 silu_mul,
                                 rope,
                                 add,
                                 dot,
                                 axpy,
                                 f16_to_f32,
                                 f32_to_f16,
                                 attn_block,
                                 gemm_float,
                                 gelu_mul,
                                 fit_scale_scalar,
                                 gptq_update_scalar,
                                 layernorm,
                                 act_residual<1>};
  return table;
}
}  // namespace detail

}  // namespace qlm::kernels
