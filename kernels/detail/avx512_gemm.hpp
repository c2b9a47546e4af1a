// Internal: AVX-512 quantize/GEMV/GEMM shared by the avx512 and avx512_vnni translation units. The
// only difference is the 4-byte dot product (vpdpbusd, or an exact vpmaddubsw emulation); all
// definitions have internal linkage so the two differently-flagged copies never merge. Templates
// take the weight type (DType): Q8, Q4, or Q4NL / Q5 (nibbles decoded by vpshufb, then Q8 math).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "detail/act_panel.hpp"
#include "detail/gemm_driver.hpp"
#include "detail/weight_format.hpp"
#include "kernel_table.hpp"

namespace qlm::kernels {
namespace {

using detail::Geometry;

inline std::int32_t load_i32(const void* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline __mmask16 prefix_mask16(std::size_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
}

// Sixteen 16-lane vectors to one: lane j = reduce(v[j]), as a tree of in-register transposes
// (45 shuffles and ops for 16 reductions instead of ~8 each). `op` is max or add, exact in any
// order for the values it gets here (floats' max, int32 sums).
template <class Op>
inline __m512 reduce16(__m512 v[16], Op op) {
  for (int i = 0; i < 8; ++i) {  // 128-bit chunks {0, 2} against {1, 3}: two vectors per result
    const __m512 a = v[2 * i], b = v[2 * i + 1];
    v[i] = op(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
  }
  for (int i = 0; i < 4; ++i) {  // again: each 128-bit chunk now belongs to one input vector
    const __m512 a = v[2 * i], b = v[2 * i + 1];
    v[i] = op(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
  }
  for (int i = 0; i < 2; ++i) {  // within chunks: two values left per input vector
    const __m512 a = v[2 * i], b = v[2 * i + 1];
    v[i] = op(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
  }
  const __m512 r = op(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xdd));
  // Lane 4c + j now holds input c + 4j.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, r);
}

// Activation quantization; the steps (d = amax / 127, 1 / d, nearbyint) are the reference's, with
// IEEE division and cvtps2dq rounding half to even, so q/d/s are bit-identical to the scalar table.
// Blocks are numbered row by row (block i of the output is row i / blocks, block i % blocks) and
// taken 16 at a time, so their 16 maxima, scales and sums are reduced and divided as vectors.
void quantize_rows_avx512(const float* x, std::size_t m, std::size_t k, std::size_t ldx,
                          std::int8_t* q, float* d, std::int32_t* s) {
  const std::size_t blocks = (k + kActBlock - 1) / kActBlock, total = m * blocks;
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  const auto fmax = [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); };
  const auto iadd = [](__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  };
  std::size_t row = 0, b = 0;  // of block i
  for (std::size_t i = 0; i < total; i += 16) {
    const std::size_t n = std::min<std::size_t>(16, total - i);
    const float* p[16];
    __mmask16 m0[16], m1[16];
    __m512 v[16];
    for (std::size_t j = 0; j < 16; ++j) {
      if (j < n) {
        const std::size_t len = std::min(kActBlock, k - b * kActBlock);
        p[j] = x + row * ldx + b * kActBlock;
        m0[j] = prefix_mask16(len);
        m1[j] = prefix_mask16(len > 16 ? len - 16 : 0);
        if (++b == blocks) b = 0, ++row;
        const __m512 x0 = _mm512_maskz_loadu_ps(m0[j], p[j]);
        const __m512 x1 = _mm512_maskz_loadu_ps(m1[j], p[j] + 16);
        v[j] = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1));
      } else {
        v[j] = _mm512_setzero_ps();
      }
    }
    const __m512 amax = reduce16(v, fmax);
    const __mmask16 live = _mm512_cmp_ps_mask(amax, _mm512_set1_ps(kZeroBlockAmax), _CMP_GT_OQ);
    const __m512 db = _mm512_maskz_div_ps(live, amax, _mm512_set1_ps(127.0f));
    alignas(64) float inv[16];
    _mm512_store_ps(inv, _mm512_maskz_div_ps(live, _mm512_set1_ps(1.0f), db));
    const __mmask16 out = prefix_mask16(n);
    _mm512_mask_storeu_ps(d + i, out, db);
    for (std::size_t j = 0; j < 16; ++j) {
      if (j >= n) {
        v[j] = _mm512_setzero_ps();
        continue;
      }
      const __m512 vinv = _mm512_set1_ps(inv[j]);
      __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m0[j], p[j]), vinv));
      __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m1[j], p[j] + 16), vinv));
      q0 = _mm512_min_epi32(_mm512_max_epi32(q0, lo), hi);
      q1 = _mm512_min_epi32(_mm512_max_epi32(q1, lo), hi);
      std::int8_t* qb = q + (i + j) * kActBlock;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + 16), _mm512_cvtepi32_epi8(q1));
      v[j] = _mm512_castsi512_ps(_mm512_add_epi32(q0, q1));
    }
    _mm512_mask_storeu_epi32(s + i, out, _mm512_castps_si512(reduce16(v, iadd)));
  }
}

// acc += w . (the 4 bytes at a, in every lane). GCC does not fold the broadcast into vpdpbusd's
// memory operand, and the separate vpbroadcastd doubled the micro-kernel's instruction count.
inline __m512i dpbusd_broadcast(__m512i acc, __m512i w, const std::int8_t* a) {
#if defined(__GNUC__) && defined(__AVX512VNNI__)
  asm("vpdpbusd %2%{1to16%}, %1, %0"
      : "+v"(acc)
      : "v"(w), "m"(*reinterpret_cast<const std::int8_t(*)[4]>(a)));  // 4 bytes, any alignment
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(load_i32(a)));
#endif
}

// One weight tile in registers: w[i] holds K values 4i..4i+3 of all 16 rows (one row per 32-bit
// lane). For the non-VNNI Q8/Q4NL path w holds |q| and neg the lanes where q < 0 (sign trick
// below).
struct Tile {
  __m512i w[8];
  __mmask64 neg[8];
  __m512 dw;
};

// Q4NL's code book, or Q5's nibble - 16, in every 128-bit lane (vpshufb looks up within lanes):
// + 128 for vpdpbusd, signed for the sign trick.
template <DType F, bool Vnni>
inline __m512i nibble_lut() {
  const void* p = F == DType::Q5 ? (Vnni ? static_cast<const void*>(detail::kQ5Biased.data())
                                         : static_cast<const void*>(detail::kQ5Signed.data()))
                                 : (Vnni ? static_cast<const void*>(detail::kQ4nlBiased.data())
                                         : static_cast<const void*>(detail::kQ4nlSigned.data()));
  return _mm512_broadcast_i32x4(_mm_loadu_si128(static_cast<const __m128i*>(p)));
}

template <DType F, bool Vnni>
inline void load_tile(const std::uint8_t* qt, const std::uint8_t* st, Tile& t) {
  if constexpr (F == DType::Q8) {
    for (int i = 0; i < 8; ++i) {
      const __m512i u = _mm512_loadu_si512(qt + 64 * i);
      if constexpr (Vnni) {
        t.w[i] = u;
      } else {
        // vpmaddubsw would saturate on 255 * 127 * 2; with q = u ^ 0x80 signed, |q| * (+-a)
        // peaks at 127 * 127 * 2 = 32258, so every pair sum is exact.
        const __m512i sq = _mm512_xor_si512(u, _mm512_set1_epi8(static_cast<char>(0x80)));
        t.w[i] = _mm512_abs_epi8(sq);
        t.neg[i] = _mm512_movepi8_mask(sq);
      }
    }
  } else if constexpr (F == DType::Q4) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_loadu_si512(qt + 64 * c);
      t.w[2 * c] = _mm512_and_si512(v, m4);
      t.w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
  } else {
    // Q4NL, Q5: one vpshufb per 64 bytes of nibbles gives the level (+ 128 for vpdpbusd), and
    // Q5's fifth bit of lane i adds 16 (one vptestmb); without VNNI the levels get the Q8 sign
    // trick (|level| <= 127, so pair sums stay <= 32258).
    const __m512i m4 = _mm512_set1_epi8(0x0f), lut = nibble_lut<F, Vnni>();
    [[maybe_unused]] __m512i fifth;
    if constexpr (F == DType::Q5) fifth = _mm512_loadu_si512(qt + detail::kQ5Bits);
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_loadu_si512(qt + 64 * c);
      const __m512i nib[2] = {_mm512_and_si512(v, m4),
                              _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)};
      for (int h = 0; h < 2; ++h) {
        __m512i lv = _mm512_shuffle_epi8(lut, nib[h]);
        if constexpr (F == DType::Q5) {
          const __mmask64 set =
              _mm512_test_epi8_mask(fifth, _mm512_set1_epi8(static_cast<char>(1 << (2 * c + h))));
          lv = _mm512_mask_add_epi8(lv, set, lv, _mm512_set1_epi8(16));
        }
        if constexpr (Vnni) {
          t.w[2 * c + h] = lv;
        } else {
          t.w[2 * c + h] = _mm512_abs_epi8(lv);
          t.neg[2 * c + h] = _mm512_movepi8_mask(lv);
        }
      }
    }
  }
  t.dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(st)));
}

// Exact int32 per row: sum_i u*q + bias, where bias = -zp * s is the zero-point term (Q8/Q4NL
// non-VNNI compute sum q_w*q directly, the same number, and ignore it).
template <DType F, bool Vnni>
inline __m512i block_dot(const Tile& t, const std::int8_t* a, std::int32_t bias) {
  if constexpr (Vnni) {
    // Two chains halve the dependent vpdpbusd latency.
    __m512i acc0 = _mm512_set1_epi32(bias), acc1 = _mm512_setzero_si512();
    for (int i = 0; i < 8; i += 2) {
      acc0 = _mm512_dpbusd_epi32(acc0, t.w[i], _mm512_set1_epi32(load_i32(a + 4 * i)));
      acc1 = _mm512_dpbusd_epi32(acc1, t.w[i + 1], _mm512_set1_epi32(load_i32(a + 4 * i + 4)));
    }
    return _mm512_add_epi32(acc0, acc1);
  } else if constexpr (detail::int8_codes(F)) {
    const __m512i ones = _mm512_set1_epi16(1), zero = _mm512_setzero_si512();
    __m512i acc = zero;
    for (int i = 0; i < 8; ++i) {
      const __m512i av = _mm512_set1_epi32(load_i32(a + 4 * i));
      const __m512i sa = _mm512_mask_sub_epi8(av, t.neg[i], zero, av);
      acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(t.w[i], sa), ones));
    }
    return acc;
  } else {
    // Nibbles: each int16 pair sum is at most 2 * 15 * 127 = 3810, so all 8 products can be
    // summed in int16 (<= 30480) before one widening vpmaddwd.
    __m512i acc16 = _mm512_setzero_si512();
    for (int i = 0; i < 8; ++i) {
      acc16 = _mm512_add_epi16(
          acc16, _mm512_maddubs_epi16(t.w[i], _mm512_set1_epi32(load_i32(a + 4 * i))));
    }
    return _mm512_add_epi32(_mm512_madd_epi16(acc16, _mm512_set1_epi16(1)),
                            _mm512_set1_epi32(bias));
  }
}

inline void store_rows(float* y, __m512 v, std::size_t row0, std::size_t n) {
  if (row0 + kRowGroup <= n) {
    _mm512_storeu_ps(y + row0, v);
  } else {
    _mm512_mask_storeu_ps(y + row0, prefix_mask16(n - row0), v);
  }
}

// GEMV: one row group at a time, blocks in order, for R = 1 or 2 activation rows (two: a split
// int8x2 input, docs/quantization.md). Quants of consecutive groups are contiguous, so [g0, g1)
// is one sequential stream (plus the scale stream) for the hardware prefetcher.
template <DType F, bool Vnni, int R>
void gemv(const std::uint8_t* w, const Geometry& geo, const QuantizedRows& a, float* y,
          std::size_t ldy, std::size_t g0, std::size_t g1) {
  // Every line of the quant stream is prefetched kGemvPrefetchBytes ahead: the hardware prefetcher
  // stops at each 4 KiB page boundary and has to ramp up again, which capped one core at ~80% of
  // the read probe with a sparse 1 KiB prefetch (all lines 2 KiB ahead: +10-15% in
  // qlm_bench_kernels; 4 KiB: one-sequence decode +5-24% on a Zen 5 core, session 31).
  // Into L2 (prefetcht2), not L1: requests for L1 wait on its few miss buffers, and the q8 GEMV
  // streamed 1.1-1.4x faster on two threads without them (bench/RESULTS.md, session 20).
  constexpr std::size_t kPrefetch = detail::kGemvPrefetchBytes;
  const std::size_t stride = geo.blocks * kActBlock;
  for (std::size_t g = g0; g < g1; ++g) {
    const std::uint8_t* qt = w + g * geo.blocks * geo.tile;
    const std::uint8_t* st = w + geo.scales + g * geo.blocks * kTileScaleBytes;
    // One accumulator per row, blocks in order: the same float operations as the GEMM path, so
    // a row's result does not depend on how many activation rows were batched. The 4-cycle FMA
    // chain is far below the ~40 cycles of DRAM time per tile.
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const auto step = [&](const Tile& t, std::size_t b) {
      for (int r = 0; r < R; ++r) {
        const std::size_t ab = r * geo.blocks + b;
        const __m512i isum = block_dot<F, Vnni>(t, a.q + r * stride + b * kActBlock,
                                                -detail::zero_point(F) * a.s[ab]);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                                 _mm512_mul_ps(t.dw, _mm512_set1_ps(a.d[ab])), acc[r]);
      }
    };
    std::size_t b = 0;
    for (; b + 2 <= geo.blocks; b += 2) {
      for (std::size_t line = 0; line < 2 * geo.tile; line += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(qt + kPrefetch + line), _MM_HINT_T2);
      }
      Tile t0, t1;
      load_tile<F, Vnni>(qt, st, t0);
      load_tile<F, Vnni>(qt + geo.tile, st + kTileScaleBytes, t1);
      step(t0, b);
      step(t1, b + 1);
      qt += 2 * geo.tile;
      st += 2 * kTileScaleBytes;
    }
    if (b < geo.blocks) {
      Tile t0;
      load_tile<F, Vnni>(qt, st, t0);
      step(t0, b);
    }
    for (int r = 0; r < R; ++r) store_rows(y + r * ldy, acc[r], g * kRowGroup, geo.n);
  }
}

inline __m512 load_rows(const float* y, std::size_t row0, std::size_t n) {
  return row0 + kRowGroup <= n ? _mm512_loadu_ps(y + row0)
                               : _mm512_maskz_loadu_ps(prefix_mask16(n - row0), y + row0);
}

// GEMM micro-kernel: blocks [b0, b0 + nb) of row group g for the panel's MR rows. One tile is
// unpacked once and feeds MR rows. b0 > 0 continues the sums stored in y: blocks are still added
// in order into one float, so K chunking does not change any result.
template <DType F, bool Vnni, int MR>
void micro(const std::uint8_t* w, const Geometry& geo, const Panel& p, std::size_t b0,
           std::size_t nb, std::size_t m0, float* y, std::size_t ldy, std::size_t g) {
  const std::uint8_t* qt = w + (g * geo.blocks + b0) * geo.tile;
  const std::uint8_t* st = w + geo.scales + (g * geo.blocks + b0) * kTileScaleBytes;
  __m512 acc[MR];
  for (int r = 0; r < MR; ++r) {
    acc[r] = b0 == 0 ? _mm512_setzero_ps() : load_rows(y + (m0 + r) * ldy, g * kRowGroup, geo.n);
  }
  for (std::size_t b = 0; b < nb; ++b) {
    // The same block of the next row group is the next tile this panel reads from memory: ask for
    // it now. The first panel over a chunk streams weights from DRAM, and at decode batch sizes
    // (one or two panels) that stream is most of the GEMM's time. Into L2, as the GEMV's.
    const std::uintptr_t next = reinterpret_cast<std::uintptr_t>(qt) + (geo.blocks + b) * geo.tile;
    for (std::size_t line = 0; line < geo.tile; line += 64) {  // an integer: it may point past w
      _mm_prefetch(reinterpret_cast<const char*>(next + line), _MM_HINT_T2);
    }
    Tile t;
    load_tile<F, Vnni>(qt + b * geo.tile, st + b * kTileScaleBytes, t);
    if constexpr (Vnni) {
      // One vpdpbusd chain per row, interleaved: MR independent chains hide each other's latency
      // without a second chain per row and its merging add (1.04-1.24x, qlm_bench_kernels).
      __m512i isum[MR];
      for (int r = 0; r < MR; ++r) isum[r] = _mm512_set1_epi32(p.bias[b][r]);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          isum[r] = dpbusd_broadcast(isum[r], t.w[i], p.q[b][r] + 4 * i);
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 scale = _mm512_mul_ps(t.dw, _mm512_set1_ps(p.d[b][r]));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), scale, acc[r]);
      }
    } else {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512i isum = block_dot<F, Vnni>(t, p.q[b][r], p.bias[b][r]);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                                 _mm512_mul_ps(t.dw, _mm512_set1_ps(p.d[b][r])), acc[r]);
      }
    }
  }
  for (int r = 0; r < MR; ++r) store_rows(y + (m0 + r) * ldy, acc[r], g * kRowGroup, geo.n);
}

// The micro-kernel policy of the shared GEMM loop (detail/gemm_driver.hpp): the panel of up to kMr
// activation rows is packed once per K chunk of kKc blocks, then feeds every row group of the L2
// chunk.
template <DType F, bool Vnni>
struct Avx512Micro {
  // The non-VNNI Q8/Q4NL tile uses 8 mask registers as well, so it gets fewer rows per pass.
  static constexpr int kMr = (detail::int8_codes(F) && !Vnni) ? 4 : 8;
  static_assert(kMr <= static_cast<int>(kMrMax));
  static constexpr std::size_t kParts = 1, kKChunk = kKc;

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
                               std::size_t /*part*/) const {
    kernels::micro<F, Vnni, MR>(w, geo, panel, b0, nb, m0, y, ldy, g);
  }
};

template <DType F, bool Vnni>
void gemm(const std::uint8_t* w, std::size_t n, std::size_t k, const QuantizedRows& a, float* y,
          std::size_t ldy, std::size_t g0, std::size_t g1) {
  const Geometry geo(F, n, k);
  g1 = std::min(g1, geo.groups);
  if (g0 >= g1 || a.rows == 0) return;
  if (a.rows == 1) return gemv<F, Vnni, 1>(w, geo, a, y, ldy, g0, g1);
  if (a.rows == 2) return gemv<F, Vnni, 2>(w, geo, a, y, ldy, g0, g1);
  // Cache blocking: a chunk of row groups whose weights (~256 KiB) stay in L2 while every
  // activation panel streams past them; the panel itself is packed once per chunk.
  Panel panel;
  Avx512Micro<F, Vnni> kernel{w, geo, a, panel, y, ldy};
  gemm_blocked(kernel, geo, a.rows, g0, g1);
}

}  // namespace
}  // namespace qlm::kernels
