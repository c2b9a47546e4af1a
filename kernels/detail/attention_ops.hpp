// Internal: one block of online-softmax attention (KernelTable::attn_block) written once over
// xsimd and instantiated per ISA translation unit; internal linkage keeps the copies apart. Keys
// and values are f32 or f16; f16 rows are converted as they are loaded (vcvtph2ps, fcvtl), so the
// f16 cache costs one conversion per vector and no extra pass or buffer.
//
// Keys are stored dims-major within a page (for each of head_dim dimensions, the page's
// kAttnBlock keys side by side; values stay one row per key). Query heads are taken 4 at a time.
// Scores: for each dimension, each vector of keys is loaded once and multiplied by the tile's
// heads' query elements (broadcast), so a vector of keys gets W scores with no horizontal
// reduction; two accumulators per (head, key vector) take alternate dimensions when there are few
// heads, to keep enough FMA chains in flight. Softmax: block max, rescale, vector exp over the
// block (padded with -inf to a whole vector). Values: each value vector is loaded once and fed to
// the 4 heads' accumulators, kCols vectors of head_dim at a time, held in registers over the block.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "detail/widen.hpp"
#include "kernel_table.hpp"
#include "qlm/detail/half.hpp"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qlm::kernels {
namespace {

template <class A>
struct AttnOps {
  using B = xsimd::batch<float, A>;
  static constexpr std::size_t W = B::size;
  static_assert(kAttnBlock % W == 0, "a score row must be whole vectors");
  static constexpr std::size_t kHeads = 4;  // query heads per tile
  // Key vectors per score pass: a 32-key page row is 2 AVX-512 vectors, 4 AVX2 and 8 NEON ones;
  // AVX2's 16 registers hold 4 heads x 2 of them, the others' 32 hold 4 x 2 (AVX-512) or 4 x 4.
  static constexpr std::size_t kKeyVecs = W == 4 ? 4 : 2;
  static constexpr std::size_t kRowVecs = kAttnBlock / W;  // vectors per page row of keys
  static_assert(kRowVecs % kKeyVecs == 0, "passes tile a page row");
  // Value vectors per accumulate step: 4 x kCols accumulators stay in registers (AVX2 has 16).
  static constexpr std::size_t kCols = W == 8 ? 2 : 4;

  using Scores = float[kHeads][kAttnBlock];
  static constexpr int kLocality = 1;  // prefetch_rows's hint

  // W consecutive elements of a key or value row as floats (f16: converted exactly, except that a
  // signalling NaN comes out quiet, which no attention output can tell apart).
  static B load(const float* p) { return B::load_unaligned(p); }
  static B load(const std::uint16_t* p) { return Widen<A>::f16(p); }
  // Scalar tails use explicit fma, so f32 and f16 rows round alike whatever the compiler contracts.
  static float scalar(float x) { return x; }
  static float scalar(std::uint16_t h) { return qlm::detail::f16_to_f32(h); }

  // Makes v a register value (an empty asm that takes it in one). An f32 row is otherwise loaded
  // again by each of the G FMAs that use it, GCC folding the load into them: with 2-3 heads, that
  // made f32 keys and values 1.2-1.6x slower than f16 ones, which convert once into a register
  // (bench/RESULTS.md, session 27). AVX-512 only: AVX2's 16 registers are all accumulators.
  static void in_register([[maybe_unused]] B& v) {
#if defined(__AVX512F__)
    if constexpr (W == 16) {
      __m512 r = v;
      asm("" : "+v"(r));
      v = r;
    }
#endif
  }

  static float hmax(B v) {
#if defined(__AVX512F__)
    if constexpr (W == 16) return _mm512_reduce_max_ps(v);
#endif
#if defined(__AVX2__)
    if constexpr (W == 8) {
      const __m256 x = v;
      __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
      m = _mm_max_ps(m, _mm_movehl_ps(m, m));
      return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
    }
#endif
#if defined(__aarch64__)
    if constexpr (W == 4) return vmaxvq_f32(v);
#endif
    alignas(64) float lanes[W];
    v.store_aligned(lanes);
    float m = lanes[0];
    for (std::size_t i = 1; i < W; ++i) m = std::max(m, lanes[i]);
    return m;
  }

  // Asks for `rows` rows of `len` elements, row `at` onwards of `base` (null: nothing), into L2:
  // a key page's dimension rows (len = kAttnBlock) or value rows (len = hd). The caller names the
  // block it will visit next (ops::attend follows its page table, since a sequence's pages are
  // rarely adjacent in the pool), and each step here asks for the matching rows of it, so the
  // requests are spread over the block's arithmetic. A 32-key block of a 64-wide
  // f16 head is one 4 KiB page and the hardware prefetcher stops at page boundaries: without this,
  // every block starts with a full memory latency. Into L2 rather than L1 (locality 1,
  // prefetcht2): requests for L1 queue on its few miss buffers and gained nothing on scattered
  // pages (bench/RESULTS.md, sessions 6 and 20).
  template <class T>
  static void prefetch_rows(const T* base, std::size_t at, std::size_t rows, std::size_t len) {
    if (base == nullptr) return;
    const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(base + at * len);
    for (std::size_t b = 0; b < rows * len * sizeof(T); b += 64) {
      __builtin_prefetch(reinterpret_cast<const void*>(p + b), 0, kLocality);
    }
  }

  // Scores of keys [first, first + n) of a dims-major key page k (kAttnBlock keys per dimension
  // row) into s[j][0, n), for G heads. Whole vectors of a row are scored, so lanes outside the
  // range (never-written slots of the page) are computed and dropped; nothing past the page is
  // read.
  template <std::size_t G, class T>
  static void scores(const float* q, std::size_t hd, const T* k, std::size_t first, std::size_t n,
                     float scale, Scores& s, const T* next_k) {
    // Accumulators per (head, key vector): two, on alternate dimensions, below 8 FMA chains (a
    // 4-cycle FMA at 2 per cycle needs 8 in flight).
    constexpr std::size_t P = G * kKeyVecs < 8 ? 2 : 1;
    // A block from slot 0 (every block but a window's first) is scored straight into s.
    alignas(64) float row[G][kAttnBlock];
    float(*out)[kAttnBlock] = first == 0 ? s : row;
    const std::size_t v_begin = first / W / kKeyVecs * kKeyVecs, v_end = (first + n + W - 1) / W;
    for (std::size_t v0 = v_begin; v0 < v_end; v0 += kKeyVecs) {
      B acc[P][G][kKeyVecs];
      for (auto& a : acc) {
        for (auto& b : a) {
          for (auto& c : b) c = B(0.0f);
        }
      }
      const T* kc = k + v0 * W;
      const T* ask = v0 == v_begin ? next_k : nullptr;  // first pass only
      std::size_t i = 0;
      // The accumulator set is a template argument: with a run-time index, acc stays in registers
      // only if GCC unrolls the loop below. The library's build did; a test build of this header
      // did not, and its 1-3-head tiles ran 2x slower (bench/RESULTS.md, session 27).
      const auto dim = [&](auto set) {
        constexpr std::size_t p = decltype(set)::value;
        B kv[kKeyVecs];
        for (std::size_t u = 0; u < kKeyVecs; ++u) {
          kv[u] = load(kc + i * kAttnBlock + u * W);
          in_register(kv[u]);
        }
        for (std::size_t j = 0; j < G; ++j) {
          const B qb(q[j * hd + i]);
          for (std::size_t u = 0; u < kKeyVecs; ++u)
            acc[p][j][u] = xsimd::fma(qb, kv[u], acc[p][j][u]);
        }
        prefetch_rows(ask, i, 1, kAttnBlock);  // the next page's row i
        ++i;
      };
      using First = std::integral_constant<std::size_t, 0>;
      while (i + P <= hd) {
        dim(First{});
        if constexpr (P == 2) dim(std::integral_constant<std::size_t, 1>{});
      }
      while (i < hd) dim(First{});
      for (std::size_t j = 0; j < G; ++j) {
        for (std::size_t u = 0; u < kKeyVecs; ++u) {
          B r = acc[0][j][u];
          if constexpr (P == 2) r += acc[1][j][u];
          (r * B(scale)).store_aligned(&out[j][(v0 + u) * W]);
        }
      }
    }
    if (first == 0) return;
    for (std::size_t j = 0; j < G; ++j) {
      std::copy_n(&row[j][first], n, &s[j][0]);
      std::fill(&s[j][n], &s[j][kAttnBlock], 0.0f);  // defined past n (softmax pads [n, nr) itself)
    }
  }

  // exp(x) for x in [-inf, 0]: xsimd's, in float, as the other softmaxes (0 for -inf, NaN stays
  // NaN, results below 2^-126 flush to 0; over 16 M points in [-87, 0], 87% correctly rounded, the
  // rest within 1 ulp but 4 at 2). It was once evaluated in double and rounded once; the attention
  // tests' error bound holds either way, and that exp took 23% of the kernel's samples in a
  // 16-sequence decode at depth 512 (xsimd's: 15%; bench/RESULTS.md, session 25).
  static B exp_vec(B in) {
    return xsimd::exp(in);
  }

  // Turns one head's scores s[0, n) into p = exp(s - M) in place (s[n, nr) = 0), updating the
  // running max m, sum l and rescaling the accumulator a when the max grows.
  static void softmax(float* s, std::size_t n, float& m, float& l, float* a, std::size_t hd) {
    const std::size_t nr = (n + W - 1) / W * W;
    std::fill(s + n, s + nr, -INFINITY);
    B vmax = B::load_aligned(s);
    for (std::size_t t = W; t < nr; t += W) vmax = xsimd::max(vmax, B::load_aligned(s + t));
    const float block_max = hmax(vmax);
    if (block_max > m) {
      const float c = std::exp(m - block_max);  // exp(-inf) = 0 on the first block
      l *= c;
      const B vc(c);
      std::size_t i = 0;
      for (; i + W <= hd; i += W) (B::load_unaligned(a + i) * vc).store_unaligned(a + i);
      for (; i < hd; ++i) a[i] *= c;
      m = block_max;
    }
    const B vm(m);
    B vsum(0.0f);
    for (std::size_t t = 0; t < nr; t += W) {
      const B e = exp_vec(B::load_aligned(s + t) - vm);  // exp(-inf) = 0 for the padding
      e.store_aligned(s + t);
      vsum += e;
    }
    l += xsimd::hadd(vsum);
  }

  template <std::size_t G, std::size_t C, class T>
  static void accumulate_cols(const Scores& p, const T* v, std::size_t n, std::size_t hd,
                              std::size_t i, float* acc, const T* next_v) {
    B a[G][C];
    for (std::size_t j = 0; j < G; ++j) {
      for (std::size_t c = 0; c < C; ++c) a[j][c] = B::load_unaligned(acc + j * hd + i + c * W);
    }
    for (std::size_t t = 0; t < n; ++t) {
      if (i == 0) prefetch_rows(next_v, t, 1, hd);
      B vv[C];
      for (std::size_t c = 0; c < C; ++c) {
        vv[c] = load(v + t * hd + i + c * W);
        in_register(vv[c]);
      }
      for (std::size_t j = 0; j < G; ++j) {
        const B pj(p[j][t]);
        for (std::size_t c = 0; c < C; ++c) a[j][c] = xsimd::fma(pj, vv[c], a[j][c]);
      }
    }
    for (std::size_t j = 0; j < G; ++j) {
      for (std::size_t c = 0; c < C; ++c) a[j][c].store_unaligned(acc + j * hd + i + c * W);
    }
  }

  template <std::size_t G, class T>
  static void accumulate(const Scores& p, const T* v, std::size_t n, std::size_t hd, float* acc,
                         const T* next_v) {
    std::size_t i = 0;
    for (; i + kCols * W <= hd; i += kCols * W) {
      accumulate_cols<G, kCols>(p, v, n, hd, i, acc, next_v);
    }
    for (; i + W <= hd; i += W) accumulate_cols<G, 1>(p, v, n, hd, i, acc, next_v);
    for (; i < hd; ++i) {
      for (std::size_t j = 0; j < G; ++j) {
        float x = acc[j * hd + i];
        for (std::size_t t = 0; t < n; ++t) x = std::fma(p[j][t], scalar(v[t * hd + i]), x);
        acc[j * hd + i] = x;
      }
    }
  }

  template <std::size_t G, class T>
  static void tile(const float* q, std::size_t hd, const T* k, std::size_t first, const T* v,
                   std::size_t n, float scale, float* m, float* l, float* acc, const T* next_k,
                   const T* next_v) {
    alignas(64) Scores s;
    scores<G>(q, hd, k, first, n, scale, s, next_k);
    for (std::size_t j = 0; j < G; ++j) softmax(s[j], n, m[j], l[j], acc + j * hd, hd);
    accumulate<G>(s, v, n, hd, acc, next_v);
  }

  template <class T>
  static void heads(const float* q, std::size_t g, std::size_t hd, const T* k, std::size_t first,
                    const T* v, std::size_t n, float scale, float* m, float* l, float* acc,
                    const T* next_k, const T* next_v) {
    for (std::size_t j = 0; j < g; j += kHeads) {
      // The next block is asked for once, by the first tile of heads.
      const T* nk = j == 0 ? next_k : nullptr;
      const T* nv = j == 0 ? next_v : nullptr;
      const float* qj = q + j * hd;
      float* aj = acc + j * hd;
      switch (std::min(kHeads, g - j)) {
        case 1:
          tile<1>(qj, hd, k, first, v, n, scale, m + j, l + j, aj, nk, nv);
          break;
        case 2:
          tile<2>(qj, hd, k, first, v, n, scale, m + j, l + j, aj, nk, nv);
          break;
        case 3:
          tile<3>(qj, hd, k, first, v, n, scale, m + j, l + j, aj, nk, nv);
          break;
        default:
          tile<4>(qj, hd, k, first, v, n, scale, m + j, l + j, aj, nk, nv);
          break;
      }
    }
  }

  static void attn_block(const float* q, std::size_t g, std::size_t hd, const void* k,
                         std::size_t first, const void* v, KvType type, std::size_t n, float scale,
                         float* m, float* l, float* acc, const void* next_k, const void* next_v) {
    using H = std::uint16_t;
    if (type == KvType::F16) {
      heads(q, g, hd, static_cast<const H*>(k), first, static_cast<const H*>(v), n, scale, m, l,
            acc, static_cast<const H*>(next_k), static_cast<const H*>(next_v));
    } else {
      heads(q, g, hd, static_cast<const float*>(k), first, static_cast<const float*>(v), n, scale,
            m, l, acc, static_cast<const float*>(next_k), static_cast<const float*>(next_v));
    }
  }
};

}  // namespace
}  // namespace qlm::kernels
