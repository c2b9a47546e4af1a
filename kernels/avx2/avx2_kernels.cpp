// AVX2 kernels (Isa::Avx2, needs AVX2 + FMA + F16C): a 16-row tile is read as two 8-row halves
// (the low and high 32 bytes of every 64-byte K group), so the layout needs no repacking. Q4NL and
// Q5 nibbles are decoded to int8 levels by vpshufb (Q5 then adds its fifth bit) and take the Q8
// path.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "detail/act_block.hpp"
#include "detail/act_panel.hpp"
#include "detail/float_ops.hpp"
#include "detail/gemm_driver.hpp"
#include "detail/tables.hpp"
#include "detail/weight_format.hpp"

namespace qlm::kernels {
namespace {

using detail::Geometry;

constexpr std::size_t kHalf = kRowGroup / 2;  // rows of a half tile

inline std::int32_t load_i32(const void* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline float hmax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline std::int32_t hsum256(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Same scalar d and 1/d as the reference and round-half-even cvtps2dq: bit-identical q/d/s.
void quantize_rows_avx2(const float* x, std::size_t m, std::size_t k, std::size_t ldx,
                        std::int8_t* q, float* d, std::int32_t* s) {
  const std::size_t blocks = (k + kActBlock - 1) / kActBlock;
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (std::size_t row = 0; row < m; ++row) {
    for (std::size_t b = 0; b < blocks; ++b) {
      float tail[kActBlock];
      const float* p = detail::act_block(x + row * ldx, k, b, tail);
      __m256 v[4];
      __m256 mx = _mm256_setzero_ps();
      for (int i = 0; i < 4; ++i) {
        v[i] = _mm256_loadu_ps(p + 8 * i);
        mx = _mm256_max_ps(mx, _mm256_and_ps(v[i], absmask));
      }
      const float amax = hmax256(mx);
      const auto [db, inv] = detail::act_scale(amax);
      __m256i qi[4];
      for (int i = 0; i < 4; ++i) {
        qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], _mm256_set1_ps(inv)));
        qi[i] = _mm256_min_epi32(_mm256_max_epi32(qi[i], lo), hi);
      }
      // packs works per 128-bit lane; the final permute restores element order.
      const __m256i p16 =
          _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + (row * blocks + b) * kActBlock),
                          _mm256_permutevar8x32_epi32(p16, perm));
      d[row * blocks + b] = db;
      s[row * blocks + b] =
          hsum256(_mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3])));
    }
  }
}

// Half a tile (8 rows) in registers: w[i] = K values 4i..4i+3 of the 8 rows. For Q8, Q4NL and Q5,
// w = |q| and sq = q (signed), for the sign trick.
struct HalfTile {
  __m256i w[8];
  __m256i sq[8];
  __m256 dw;
};

// The signed level of each nibble: Q4NL's code book or Q5's nibble - 16 (in both 128-bit lanes).
template <DType F>
inline __m256i nibble_lut() {
  const void* p = F == DType::Q5 ? static_cast<const void*>(detail::kQ5Signed.data())
                                 : static_cast<const void*>(detail::kQ4nlSigned.data());
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p)));
}

// Q5: adds 16 to the bytes of lane i (K values 4i..4i+3) whose fifth bit is set in `fifth`.
inline __m256i add_fifth_bit(__m256i level, __m256i fifth, int i) {
  const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << i));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(fifth, bit), bit);
  return _mm256_add_epi8(level, _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

template <DType F>
inline void load_half(const std::uint8_t* qt, const std::uint8_t* st, std::size_t h, HalfTile& t) {
  if constexpr (F == DType::Q8) {
    for (int i = 0; i < 8; ++i) {
      const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + 64 * i + 32 * h));
      t.sq[i] = _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80)));
      t.w[i] = _mm256_abs_epi8(t.sq[i]);
    }
  } else if constexpr (F == DType::Q4) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + 64 * c + 32 * h));
      t.w[2 * c] = _mm256_and_si256(v, m4);
      t.w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
  } else {
    // Q4NL, Q5: vpshufb looks each nibble up (table broadcast to both 128-bit lanes).
    const __m256i m4 = _mm256_set1_epi8(0x0f), lut = nibble_lut<F>();
    [[maybe_unused]] __m256i fifth;
    if constexpr (F == DType::Q5) {
      fifth = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + detail::kQ5Bits + 32 * h));
    }
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + 64 * c + 32 * h));
      t.sq[2 * c] = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
      t.sq[2 * c + 1] = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
      if constexpr (F == DType::Q5) {
        t.sq[2 * c] = add_fifth_bit(t.sq[2 * c], fifth, 2 * c);
        t.sq[2 * c + 1] = add_fifth_bit(t.sq[2 * c + 1], fifth, 2 * c + 1);
      }
      t.w[2 * c] = _mm256_abs_epi8(t.sq[2 * c]);
      t.w[2 * c + 1] = _mm256_abs_epi8(t.sq[2 * c + 1]);
    }
  }
  t.dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(st + 2 * kHalf * h)));
}

// Exact int32 per row. Q8/Q4NL/Q5: vpmaddubsw(|q|, sign(a, q)) peaks at 127 * 127 * 2 = 32258 (no
// saturation) and yields sum q*a directly. Q4: nibble products sum to at most 8 * 3810 = 30480 in
// int16, so one vpmaddwd per block suffices; then subtract the zero point 8 * s.
template <DType F>
inline __m256i block_dot(const HalfTile& t, const std::int8_t* a, std::int32_t s) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (detail::int8_codes(F)) {
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 8; ++i) {
      const __m256i av = _mm256_set1_epi32(load_i32(a + 4 * i));
      const __m256i p = _mm256_maddubs_epi16(t.w[i], _mm256_sign_epi8(av, t.sq[i]));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    return acc;
  } else {
    __m256i acc16 = _mm256_setzero_si256();
    for (int i = 0; i < 8; ++i) {
      acc16 = _mm256_add_epi16(
          acc16, _mm256_maddubs_epi16(t.w[i], _mm256_set1_epi32(load_i32(a + 4 * i))));
    }
    return _mm256_sub_epi32(_mm256_madd_epi16(acc16, ones), _mm256_set1_epi32(8 * s));
  }
}

inline void store_half(float* y, __m256 v, std::size_t row0, std::size_t n) {
  if (row0 + kHalf <= n) {
    _mm256_storeu_ps(y + row0, v);
  } else if (row0 < n) {
    alignas(32) float t[kHalf];
    _mm256_store_ps(t, v);
    for (std::size_t r = row0; r < n; ++r) y[r] = t[r - row0];
  }
}

// The 8 results of rows [row0, row0 + 8) of y that exist (rows >= n read as 0).
inline __m256 load_y_half(const float* y, std::size_t row0, std::size_t n) {
  if (row0 + kHalf <= n) return _mm256_loadu_ps(y + row0);
  alignas(32) float t[kHalf] = {};
  for (std::size_t r = row0; r < n; ++r) t[r - row0] = y[r];
  return _mm256_load_ps(t);
}

// An empty asm that claims to change v: it keeps GCC's reassociation from turning each row's chain
// of adds into a tree, which hoisted all of a block's products ahead of the adds and spilled most
// of them (objdump of the Q4 micro-kernel: 14 ymm spills per block; with the barrier the GEMM
// runs 1.11-1.18x faster, qlm_bench_kernels).
inline void keep(__m256i& v) {
  __asm__("" : "+x"(v));
}

// Exact int32 sums of one block for the panel's MR rows, K group by K group: the weights of a group
// are decoded once and feed every row, so only one group is live (a whole decoded half tile is
// 16 registers, all AVX2 has). Same integers as block_dot.
template <DType F, int MR>
inline void block_sums(const std::uint8_t* qt, const Panel& p, std::size_t b, __m256i (&isum)[MR]) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (F == DType::Q4) {
    // Nibble products of a block fit int16 (see block_dot): one widening vpmaddwd per row.
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i s16[MR];
    for (int r = 0; r < MR; ++r) s16[r] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + 64 * c));
      const __m256i lo = _mm256_and_si256(v, m4),
                    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const std::int8_t* a = p.q[b][r] + 8 * c;
        s16[r] = _mm256_add_epi16(s16[r], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load_i32(a))));
        s16[r] =
            _mm256_add_epi16(s16[r], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load_i32(a + 4))));
        keep(s16[r]);
      }
    }
    for (int r = 0; r < MR; ++r) {
      isum[r] = _mm256_add_epi32(_mm256_madd_epi16(s16[r], ones), _mm256_set1_epi32(p.bias[b][r]));
    }
  } else {
    const __m256i lut = nibble_lut<F>();
    [[maybe_unused]] __m256i fifth;
    if constexpr (F == DType::Q5) {
      fifth = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + detail::kQ5Bits));
    }
    for (int r = 0; r < MR; ++r) isum[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      __m256i sq;
      if constexpr (F == DType::Q8) {
        const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + 64 * i));
        sq = _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80)));
      } else {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qt + 64 * (i / 2)));
        const __m256i nib = (i & 1) ? _mm256_srli_epi16(v, 4) : v;
        sq = _mm256_shuffle_epi8(lut, _mm256_and_si256(nib, _mm256_set1_epi8(0x0f)));
        if constexpr (F == DType::Q5) sq = add_fifth_bit(sq, fifth, i);
      }
      const __m256i aw = _mm256_abs_epi8(sq);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m256i av = _mm256_set1_epi32(load_i32(p.q[b][r] + 4 * i));
        const __m256i pr = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, sq));
        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(pr, ones));
        keep(isum[r]);
      }
    }
  }
}

// Prefetches the `bytes` at p into L2 (as the AVX-512 kernels do). The address is formed as an
// integer: past the last tile of the matrix it points nowhere valid (prefetches never fault).
inline void prefetch_tile(const std::uint8_t* p, std::size_t bytes) {
  const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(p);
  for (std::size_t line = 0; line < bytes; line += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(at + line), _MM_HINT_T2);
  }
}

// One 8-row half h of group g, blocks [b0, b0 + nb), against the panel's MR rows. b0 > 0 continues
// the sums stored in y: blocks are added in order into one float per (row, activation row), the
// same operations as the GEMV and the other ISAs, so K chunking changes no result.
template <DType F, int MR>
void micro(const std::uint8_t* w, const Geometry& geo, const Panel& p, std::size_t b0,
           std::size_t nb, std::size_t m0, float* y, std::size_t ldy, std::size_t g,
           std::size_t h) {
  const std::uint8_t* qt = w + (g * geo.blocks + b0) * geo.tile + 32 * h;
  const std::uint8_t* st = w + geo.scales + (g * geo.blocks + b0) * kTileScaleBytes + 2 * kHalf * h;
  const std::size_t row0 = g * kRowGroup + h * kHalf;
  __m256 acc[MR];
  for (int r = 0; r < MR; ++r) {
    acc[r] = b0 == 0 ? _mm256_setzero_ps() : load_y_half(y + (m0 + r) * ldy, row0, geo.n);
  }
  for (std::size_t b = 0; b < nb; ++b) {
    // As the AVX-512 micro-kernel: ask for the next row group's tile (its every line, once, from
    // the first half's pass) while this one is computed.
    if (h == 0) prefetch_tile(qt + (geo.blocks + b) * geo.tile, geo.tile);
    __m256i isum[MR];
    block_sums<F, MR>(qt + b * geo.tile, p, b, isum);
    const __m256 dw = _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(st + b * kTileScaleBytes)));
    for (int r = 0; r < MR; ++r) {
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]),
                               _mm256_mul_ps(dw, _mm256_set1_ps(p.d[b][r])), acc[r]);
    }
  }
  for (int r = 0; r < MR; ++r) store_half(y + (m0 + r) * ldy, acc[r], row0, geo.n);
}

template <DType F>
void gemv(const std::uint8_t* w, const Geometry& geo, const QuantizedRows& a, float* y,
          std::size_t g0, std::size_t g1) {
  for (std::size_t g = g0; g < g1; ++g) {
    const std::uint8_t* qt = w + g * geo.blocks * geo.tile;
    const std::uint8_t* st = w + geo.scales + g * geo.blocks * kTileScaleBytes;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (std::size_t b = 0; b < geo.blocks; ++b) {
      // Every line of the tile, as the AVX-512 GEMV: one line per tile 1 KiB ahead decoded q4
      // 14-15% slower (the AVX2 kernels on a Zen 5 core, bench/RESULTS.md, session 31). The
      // address is only prefetched, so past the matrix it may point anywhere.
      for (std::size_t line = 0; line < geo.tile; line += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(qt + detail::kGemvPrefetchBytes + line),
                     _MM_HINT_T2);
      }
      const std::int8_t* ab = a.q + b * kActBlock;
      const __m256 da = _mm256_set1_ps(a.d[b]);
      HalfTile t;
      load_half<F>(qt, st, 0, t);
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot<F>(t, ab, a.s[b])),
                             _mm256_mul_ps(t.dw, da), acc0);
      load_half<F>(qt, st, 1, t);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot<F>(t, ab, a.s[b])),
                             _mm256_mul_ps(t.dw, da), acc1);
      qt += geo.tile;
      st += kTileScaleBytes;
    }
    store_half(y, acc0, g * kRowGroup, geo.n);
    store_half(y, acc1, g * kRowGroup + kHalf, geo.n);
  }
}

// The micro-kernel policy of the shared GEMM loop (detail/gemm_driver.hpp): the AVX-512 panel and K
// chunks, one call per 8-row half of a group.
template <DType F>
struct Avx2Micro {
  static constexpr int kMr = 4;
  static constexpr std::size_t kParts = 2, kKChunk = kKc;

  const std::uint8_t* w;
  const Geometry& geo;
  const QuantizedRows& a;
  Panel& panel;
  float* y;
  std::size_t ldy;

  QLM_KERNEL_INLINE void pack(std::size_t m0, std::size_t mr, std::size_t b0, std::size_t nb) {
    pack_panel<F>(a, m0, mr, b0, nb, panel);
  }
  template <int MR>
  QLM_KERNEL_INLINE void micro(std::size_t m0, std::size_t b0, std::size_t nb, std::size_t g,
                               std::size_t h) const {
    kernels::micro<F, MR>(w, geo, panel, b0, nb, m0, y, ldy, g, h);
  }
};

template <DType F>
void gemm(const std::uint8_t* w, std::size_t n, std::size_t k, const QuantizedRows& a, float* y,
          std::size_t ldy, std::size_t g0, std::size_t g1) {
  const Geometry geo(F, n, k);
  g1 = std::min(g1, geo.groups);
  if (g0 >= g1 || a.rows == 0) return;
  if (a.rows == 1) return gemv<F>(w, geo, a, y, g0, g1);
  // Cache blocking as the AVX-512 GEMM: a chunk of row groups (~256 KiB of weights) stays in L2
  // while the activation panels stream past; each panel is packed once per chunk.
  Panel panel;
  Avx2Micro<F> kernel{w, geo, a, panel, y, ldy};
  gemm_blocked(kernel, geo, a.rows, g0, g1);
}

}  // namespace

namespace detail {
const KernelTable& avx2_table() noexcept {
  static const KernelTable table =
      table_with_float_ops<xsimd::avx2>(Isa::Avx2, quantize_rows_avx2, gemm<DType::Q8>,
                                        gemm<DType::Q4>, gemm<DType::Q4NL>, gemm<DType::Q5>);
  return table;
}
}  // namespace detail

}  // namespace qlm::kernels
