// Self-contained kernel checks (no test framework) shared by the Catch2 tests and the standalone
// NEON driver that runs under qemu: each returns a list of failure messages, empty on success.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernel_table.hpp"
#include "qlm/detail/half.hpp"
#include "qlm/format/dtype.hpp"
#include "qlm/quant/layout.hpp"
#include "qlm/quant/quantize.hpp"

namespace qlm::kernels::check {

struct Report {
  std::vector<std::string> errors;
  bool ok() const { return errors.empty(); }
  template <class... T>
  void fail(const T&... parts) {
    if (errors.size() >= 8) return;  // the first few failures say enough
    std::ostringstream os;
    (os << ... << parts);
    errors.push_back(os.str());
  }
  void merge(const Report& r) {
    for (const auto& e : r.errors) fail(e);
  }
};

// A byte buffer whose data starts `misalign` bytes after a 64-byte boundary.
template <class T>
class Buffer {
 public:
  Buffer(std::size_t count, std::size_t misalign) : storage_(count * sizeof(T) + 128) {
    const auto base = reinterpret_cast<std::uintptr_t>(storage_.data());
    offset_ = (64 - base % 64) % 64 + misalign;
    size_ = count;
  }
  T* data() { return reinterpret_cast<T*>(storage_.data() + offset_); }
  const T* data() const { return reinterpret_cast<const T*>(storage_.data() + offset_); }
  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }

 private:
  std::vector<unsigned char> storage_;
  std::size_t offset_ = 0, size_ = 0;
};

inline constexpr double kEps = 1.0 / 16777216.0;  // 2^-24, unit roundoff of float

// Activations with the awkward cases mixed in by row: random, all zero, alternating zero blocks,
// one huge outlier per block, every value at the block's max magnitude (q = +-127), large scale.
inline std::vector<float> make_activations(std::size_t m, std::size_t k, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(m * k);
  for (std::size_t r = 0; r < m; ++r) {
    for (std::size_t c = 0; c < k; ++c) {
      float v = nd(rng);
      switch (r % 6) {
        case 1:
          v = 0.0f;
          break;
        case 2:
          v = (c / 32) % 2 == 0 ? 0.0f : v;
          break;
        case 3:
          v = c % 32 == 7 ? 1e4f * (v < 0 ? -1.0f : 1.0f) : v;
          break;
        case 4:
          v = (c % 3 == 0) ? -3.0f : 3.0f;
          break;
        case 5:
          v *= 1e6f;
          break;
        default:
          break;
      }
      x[r * k + c] = v;
    }
  }
  return x;
}

// Weights: random rows, rows at the largest stored code (Q8 u = 255 / 1, Q4 u = 15 / 0), zero rows
// and rows with an outlier per block.
inline std::vector<float> make_weights(std::size_t n, std::size_t k, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(n * k);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < k; ++c) {
      float v = nd(rng);
      switch (r % 5) {
        case 1:
          v = 0.5f;
          break;  // Q8 255, Q4 0
        case 2:
          v = c % 2 == 0 ? -0.5f : 0.4375f;
          break;  // Q8 1/255, Q4 0/15
        case 3:
          v = 0.0f;
          break;
        case 4:
          v = c % 32 == 3 ? 2.0f : v;
          break;
        default:
          break;
      }
      w[r * k + c] = v;
    }
  }
  return w;
}

inline std::vector<std::uint8_t> quantize_weights(DType t, std::size_t n, std::size_t k,
                                                  std::uint32_t seed) {
  const std::vector<float> w = make_weights(n, k, seed);
  std::vector<std::uint8_t> out(quant::TileGeometry(t, n, k).total_bytes());
  quant::quantize_matrix(t, w, n, k, out);
  return out;
}

// Stores code `code` of (row r, column c) of a Q4NL (0..15) or Q5 (0..31) tile.
inline void put_code(DType t, std::uint8_t* tile, std::size_t r, std::size_t c, unsigned code) {
  std::uint8_t& byte = tile[quant::q4_index(r, c)];
  const unsigned nib = code & 15;
  byte = static_cast<std::uint8_t>(quant::q4_high(c) ? (byte & 0x0f) | (nib << 4)
                                                     : (byte & 0xf0) | nib);
  if (t == DType::Q5) {
    std::uint8_t& bits = tile[quant::q5_bit_index(r, c)];
    const unsigned mask = 1u << quant::q5_bit(c);
    bits = static_cast<std::uint8_t>(code & 16 ? bits | mask : bits & ~mask);
  }
}

// The level of (row r, column c) of a hand-built Q4NL or Q5 tile, decoded here independently of
// the library: the code book entry, or the 5-bit code - 16.
inline int hand_level(DType t, const std::uint8_t* tile, std::size_t r, std::size_t c) {
  const std::uint8_t byte = tile[quant::q4_index(r, c)];
  const unsigned nib = quant::q4_high(c) ? byte >> 4 : byte & 0x0f;
  if (t == DType::Q4NL) return quant::kQ4nlLevels[nib];
  const unsigned fifth = (tile[256 + r * 4 + c % 4] >> (c / 4)) & 1u;
  return static_cast<int>(nib + 16 * fifth) - 16;
}

// Q4NL or Q5 tiles built by hand (random codes and f16 scales of both signs: all a kernel reads).
// Rows by r % 5: random; every weight at code 0 (Q4NL's -127, Q5's -16) with scales +-65504 (the
// largest f16); alternating the lowest and highest codes; scale 0; subnormal f16 scales.
// Padding columns hold random codes too (the activations are zero there); padding rows are 0.
inline std::vector<std::uint8_t> make_code_weights(DType t, std::size_t n, std::size_t k,
                                                   std::uint32_t seed) {
  const quant::TileGeometry geo(t, n, k);
  const unsigned codes = t == DType::Q5 ? 32 : 16;
  std::vector<std::uint8_t> out(geo.total_bytes(), 0);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(1e-4f, 0.05f);
  for (std::size_t row = 0; row < n; ++row) {
    const std::size_t g = row / kRowGroup, r = row % kRowGroup;
    for (std::size_t b = 0; b < geo.blocks; ++b) {
      const float sign = rng() % 2 == 0 ? -1.0f : 1.0f;
      std::uint16_t h = 0;
      switch (row % 5) {
        case 1:
          h = qlm::detail::f32_to_f16(sign * 65504.0f);
          break;
        case 3:
          break;
        case 4:
          h = static_cast<std::uint16_t>((sign < 0 ? 0x8000u : 0u) | (1u + rng() % 0x3ffu));
          break;
        default:
          h = qlm::detail::f32_to_f16(sign * mag(rng));
          break;
      }
      std::memcpy(&out[geo.scale_offset(g, b) + 2 * r], &h, 2);
      for (std::size_t c = 0; c < kBlockK; ++c) {
        unsigned code = rng() % codes;
        if (row % 5 == 1) code = 0;
        if (row % 5 == 2) code = c % 2 == 0 ? 0 : codes - 1;
        put_code(t, &out[geo.quant_offset(g, b)], r, c, code);
      }
    }
  }
  return out;
}

// Row `row` of a hand-built Q4NL or Q5 matrix in float: level * d, exact (an int8 times an f16
// has at most 18 significant bits).
inline void dequantize_hand_row(DType t, const std::vector<std::uint8_t>& w, std::size_t n,
                                std::size_t k, std::size_t row, std::vector<float>& out) {
  const quant::TileGeometry geo(t, n, k);
  const std::size_t g = row / kRowGroup, r = row % kRowGroup;
  out.resize(k);
  for (std::size_t c = 0; c < k; ++c) {
    const std::size_t b = c / kBlockK, cc = c % kBlockK;
    std::uint16_t h;
    std::memcpy(&h, &w[geo.scale_offset(g, b) + 2 * r], 2);
    out[c] = static_cast<float>(hand_level(t, &w[geo.quant_offset(g, b)], r, cc)) *
             qlm::detail::f16_to_f32(h);
  }
}

// Test weights of a type: Q8/Q4 from the quantizer, Q4NL and Q5 built by hand.
inline bool hand_built(DType t) {
  return t == DType::Q4NL || t == DType::Q5;
}
inline std::vector<std::uint8_t> test_weights(DType t, std::size_t n, std::size_t k,
                                              std::uint32_t seed) {
  return hand_built(t) ? make_code_weights(t, n, k, seed) : quantize_weights(t, n, k, seed);
}

inline GemmFn gemm_of(const KernelTable& t, DType type) {
  return t.gemm_for(type);
}

struct Activations {
  Buffer<std::int8_t> q;
  Buffer<float> d;
  Buffer<std::int32_t> s;
  QuantizedRows rows;
  Activations(const KernelTable& t, const float* x, std::size_t m, std::size_t k, std::size_t ldx,
              std::size_t misalign)
      : q(quantized_rows_size(m, k).q, misalign),
        d(quantized_rows_size(m, k).d, 0),
        s(quantized_rows_size(m, k).s, 0) {
    t.quantize_rows(x, m, k, ldx, q.data(), d.data(), s.data());
    rows = {q.data(), d.data(), s.data(), quantized_rows_size(m, k).blocks, m};
  }
};

// Activation quantization must match the scalar table bit for bit, and must satisfy the format's
// own invariants (|q| <= 127, s = sum q, padding zero).
inline Report check_quantize(const KernelTable& t, const KernelTable& ref, std::size_t m,
                             std::size_t k) {
  Report rep;
  const std::size_t ldx = k + 3;
  Buffer<float> x(m * ldx, 4);  // misaligned by one float
  const std::vector<float> src = make_activations(m, k, static_cast<std::uint32_t>(m * 131 + k));
  for (std::size_t r = 0; r < m; ++r) std::memcpy(x.data() + r * ldx, &src[r * k], k * 4);
  const Activations a(t, x.data(), m, k, ldx, 1), b(ref, x.data(), m, k, ldx, 0);
  const std::size_t blocks = a.rows.blocks;
  for (std::size_t i = 0; i < m * blocks * kActBlock; ++i) {
    if (a.q[i] != b.q[i]) {
      rep.fail("quantize q mismatch m=", m, " k=", k, " at ", i, ": ", int{a.q[i]}, " vs ",
               int{b.q[i]});
      break;
    }
  }
  for (std::size_t i = 0; i < m * blocks; ++i) {
    if (std::memcmp(&a.d[i], &b.d[i], 4) != 0 || a.s[i] != b.s[i]) {
      rep.fail("quantize d/s mismatch m=", m, " k=", k, " block ", i, ": d ", a.d[i], " vs ",
               b.d[i], ", s ", a.s[i], " vs ", b.s[i]);
      break;
    }
    std::int32_t sum = 0;
    for (std::size_t j = 0; j < kActBlock; ++j) {
      const int q = a.q[i * kActBlock + j];
      sum += q;
      if (q < -127 || q > 127) rep.fail("q out of range at block ", i);
      if ((i % blocks) * kActBlock + j >= k && q != 0) rep.fail("padding not zero at block ", i);
    }
    if (sum != a.s[i]) rep.fail("s is not the sum of q at block ", i);
  }
  return rep;
}

// The second int8 pass's input, x - q * d rounded once: the ISA against the scalar twin bit for
// bit, and the twin against the exact difference (q * d is exact in double, and so is x minus
// it, since q * d is within a rounding step of x) rounded to float. Rows of every kind of
// make_activations (zeros, zero blocks, outliers), lengths around the vector widths and a block.
inline Report check_act_residual(const KernelTable& t, const KernelTable& ref) {
  Report rep;
  constexpr std::size_t kRows = 6;
  for (std::size_t n : {1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 576, 1001}) {
    const std::vector<float> x = make_activations(kRows, n, static_cast<std::uint32_t>(n + 9));
    const Activations a(ref, x.data(), kRows, n, n, 0);
    const std::size_t blocks = a.rows.blocks;
    for (std::size_t row = 0; row < kRows; ++row) {
      const float* xr = x.data() + row * n;
      const std::int8_t* q = a.q.data() + row * blocks * kActBlock;
      const float* d = a.d.data() + row * blocks;
      Buffer<float> r1(n, 4), r2(n, 0);  // the ISA's output misaligned by one float
      t.act_residual(xr, q, d, n, r1.data());
      ref.act_residual(xr, q, d, n, r2.data());
      for (std::size_t j = 0; j < n; ++j) {
        const auto want = static_cast<float>(static_cast<double>(xr[j]) -
                                             static_cast<double>(q[j]) * d[j / kActBlock]);
        if (std::memcmp(&r1[j], &r2[j], 4) != 0 || std::memcmp(&r2[j], &want, 4) != 0) {
          rep.fail(to_string(t.isa), " act_residual n=", n, " row ", row, " at ", j, ": ", r1[j],
                   " (scalar ", r2[j], ", exact ", want, ")");
          break;
        }
      }
    }
  }
  return rep;
}

// Dequantized activation row m (q * d, as the kernels see it).
inline std::vector<float> dequant_act(const QuantizedRows& a, std::size_t m, std::size_t k) {
  std::vector<float> out(k);
  for (std::size_t c = 0; c < k; ++c) {
    out[c] = static_cast<float>(a.q[m * a.blocks * kActBlock + c]) * a.d[m * a.blocks + c / 32];
  }
  return out;
}

inline constexpr float kSentinel = -7.25e33f;

// One GEMM call: table `t` against either table `ref` (ref != nullptr) or, with ref == nullptr,
// against a double-precision dot product of the dequantized weights and activations. The error
// bound comes from the inputs: sum_k |w_k a_k| * (blocks + 8) * 2^-23 covers the rounding of
// the dequantized values, of d_w * d_a and of the block-by-block float accumulation (twice, when
// two kernels are compared). Also checks that nothing outside rows [0, n) and columns [0, ldy) of
// the requested output rows is written.
inline Report check_gemm(const KernelTable& t, const KernelTable* ref, DType type, std::size_t n,
                         std::size_t k, std::size_t m) {
  Report rep;
  const auto w = test_weights(type, n, k, static_cast<std::uint32_t>(n * 7 + k));
  Buffer<std::uint8_t> wb(w.size(), 0);
  std::memcpy(wb.data(), w.data(), w.size());
  const std::vector<float> x = make_activations(m, k, static_cast<std::uint32_t>(m + k * 3));
  const Activations a(t, x.data(), m, k, k, 3);
  const std::size_t ldy = n + 5, groups = (n + 15) / 16;
  Buffer<float> y(m * ldy + 8, 4), y2(m * ldy + 8, 4);
  std::fill(y.data(), y.data() + y.size(), kSentinel);
  std::fill(y2.data(), y2.data() + y2.size(), kSentinel);
  gemm_of(t, type)(wb.data(), n, k, a.rows, y.data(), ldy, 0, groups);
  if (ref != nullptr) gemm_of(*ref, type)(wb.data(), n, k, a.rows, y2.data(), ldy, 0, groups);
  std::vector<std::vector<float>> wd(n, std::vector<float>(k));
  for (std::size_t r = 0; r < n; ++r) {
    if (hand_built(type)) {
      dequantize_hand_row(type, w, n, k, r, wd[r]);
      std::vector<float> lib(k);  // the format's own decoding must be the same level * d
      quant::dequantize_row(type, w, n, k, r, lib);
      if (std::memcmp(lib.data(), wd[r].data(), k * sizeof(float)) != 0) {
        rep.fail(to_string(type), ": quant::dequantize_row differs from level * d in row ", r);
      }
    } else {
      quant::dequantize_row(type, w, n, k, r, wd[r]);
    }
  }
  for (std::size_t mi = 0; mi < m; ++mi) {
    const std::vector<float> ad = dequant_act(a.rows, mi, k);
    for (std::size_t r = 0; r < ldy; ++r) {
      const float got = y[mi * ldy + r];
      if (r >= n) {
        if (std::memcmp(&got, &kSentinel, 4) != 0) rep.fail("wrote past row n: m=", mi, " r=", r);
        continue;
      }
      double exact = 0.0, mag = 0.0;
      for (std::size_t c = 0; c < k; ++c) {
        exact += static_cast<double>(wd[r][c]) * ad[c];
        mag += std::fabs(static_cast<double>(wd[r][c]) * ad[c]);
      }
      const double tol = mag * static_cast<double>(a.rows.blocks + 8) * 2.0 * kEps;
      const double want = ref != nullptr ? static_cast<double>(y2[mi * ldy + r]) : exact;
      if (!(std::fabs(static_cast<double>(got) - want) <= tol)) {
        rep.fail(to_string(t.isa), " ", to_string(type), " n=", n, " k=", k, " m=", m, ": y[", mi,
                 "][", r, "] = ", got, " want ", want, " (tol ", tol, ")");
      }
    }
  }
  return rep;
}

// Splitting the row groups into chunks (as a thread pool would) must give identical bits.
inline Report check_split(const KernelTable& t, DType type, std::size_t n, std::size_t k,
                          std::size_t m) {
  Report rep;
  const auto w = test_weights(type, n, k, 99);
  const std::vector<float> x = make_activations(m, k, 5);
  const Activations a(t, x.data(), m, k, k, 0);
  const std::size_t groups = (n + 15) / 16;
  const GemmFn f = gemm_of(t, type);
  std::vector<float> whole(m * n), parts(m * n);
  f(w.data(), n, k, a.rows, whole.data(), n, 0, groups);
  for (std::size_t threads = 2; threads <= 3; ++threads) {
    std::fill(parts.begin(), parts.end(), 0.0f);
    for (std::size_t i = 0; i < threads; ++i) {
      f(w.data(), n, k, a.rows, parts.data(), n, groups * i / threads, groups * (i + 1) / threads);
    }
    if (std::memcmp(whole.data(), parts.data(), whole.size() * 4) != 0) {
      rep.fail(to_string(t.isa), " ", to_string(type), " split into ", threads, " chunks differs");
    }
  }
  // Row m of a batch equals the same row computed alone (GEMM and GEMV paths agree bit for bit).
  if (m > 1) {
    std::vector<float> single(n);
    const QuantizedRows last{a.rows.q + (m - 1) * a.rows.blocks * kActBlock,
                             a.rows.d + (m - 1) * a.rows.blocks, a.rows.s + (m - 1) * a.rows.blocks,
                             a.rows.blocks, 1};
    f(w.data(), n, k, last, single.data(), n, 0, groups);
    if (std::memcmp(single.data(), whole.data() + (m - 1) * n, n * 4) != 0) {
      rep.fail(to_string(t.isa), " ", to_string(type), " GEMV differs from GEMM row");
    }
  }
  return rep;
}

inline const std::size_t kShapesK[] = {32, 33, 64, 172, 200, 4096 + 32, 14336};
inline const std::size_t kShapesN[] = {1, 15, 16, 17, 33, 48};
// Activation rows: 1..17, and 32 and 33 (16 sequences of int8x2 rows: 4 whole AVX-512 panels of
// 8, and a tail of one row after them).
inline const std::size_t kShapesM[] = {1,  2,  3,  4,  5,  6,  7,  8,  9, 10,
                                       11, 12, 13, 14, 15, 16, 17, 32, 33};

// Every awkward shape; long K uses fewer activation row counts to keep the run short.
inline Report check_all_gemm(const KernelTable& t, const KernelTable* ref) {
  Report rep;
  for (DType type : {DType::Q8, DType::Q4, DType::Q4NL, DType::Q5}) {
    for (std::size_t k : kShapesK) {
      for (std::size_t n : kShapesN) {
        for (std::size_t m : kShapesM) {
          if (k > 256 && m != 1 && m != 2 && m != 9 && m != 17 && m != 33) continue;
          if (k > 256 && n != 1 && n != 17 && n != 48) continue;
          rep.merge(check_gemm(t, ref, type, n, k, m));
        }
      }
    }
    rep.merge(check_split(t, type, 100, 200, 1));
    rep.merge(check_split(t, type, 100, 200, 2));  // the two-row GEMV of split inputs
    rep.merge(check_split(t, type, 100, 200, 11));
  }
  const KernelTable& qref = ref != nullptr ? *ref : t;
  for (std::size_t k : kShapesK) {
    for (std::size_t m : {1, 2, 7, 17, 40}) rep.merge(check_quantize(t, qref, m, k));
  }
  return rep;
}

// gemm_q4nl and gemm_q5 decode every code to its level, exactly: weight (r, c) has code
// (r + c) % codes and scale 1, activation row m is 127 at column j_m and 0 elsewhere (so q = 127
// and d = 1 there), hence y[m][r] = 127 * level((r + j_m) % codes) with no rounding at all,
// through the GEMV (m = 1) and GEMM paths.
inline Report check_codebook(const KernelTable& t, DType type) {
  Report rep;
  const std::size_t codes = type == DType::Q5 ? 32 : 16;
  for (std::size_t k : {32, 40, 96}) {
    for (std::size_t m : {1, 3, 9}) {
      const std::size_t n = 16;
      const quant::TileGeometry geo(type, n, k);
      std::vector<std::uint8_t> w(geo.total_bytes(), 0);
      const std::uint16_t one = qlm::detail::f32_to_f16(1.0f);
      for (std::size_t r = 0; r < n; ++r) {
        for (std::size_t c = 0; c < k; ++c) {
          const std::size_t b = c / kBlockK, cc = c % kBlockK;
          put_code(type, &w[geo.quant_offset(0, b)], r, cc, static_cast<unsigned>((r + c) % codes));
          std::memcpy(&w[geo.scale_offset(0, b) + 2 * r], &one, 2);
        }
      }
      std::vector<float> x(m * k, 0.0f);
      for (std::size_t mi = 0; mi < m; ++mi) x[mi * k + (mi * 37 + 5) % k] = 127.0f;
      const Activations a(t, x.data(), m, k, k, 0);
      std::vector<float> y(m * n, kSentinel);
      t.gemm_for(type)(w.data(), n, k, a.rows, y.data(), n, 0, 1);
      for (std::size_t mi = 0; mi < m; ++mi) {
        const std::size_t j = (mi * 37 + 5) % k;
        for (std::size_t r = 0; r < n; ++r) {
          const std::size_t code = (r + j) % codes;
          const int level =
              type == DType::Q5 ? static_cast<int>(code) - 16 : quant::kQ4nlLevels[code];
          const float want = 127.0f * static_cast<float>(level);
          if (y[mi * n + r] != want) {
            rep.fail(to_string(t.isa), " ", to_string(type), " codes k=", k, " m=", m, ": y[", mi,
                     "][", r, "] = ", y[mi * n + r], " want ", want);
          }
        }
      }
    }
  }
  return rep;
}

// fp32 helpers against their scalar twins. Bounds: reductions differ by reassociation (n * eps *
// sum of magnitudes), exp by a few ulp (16 eps relative), elementwise ops by FMA contraction.
inline Report check_float_helpers(const KernelTable& t, const KernelTable& ref) {
  Report rep;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (std::size_t n : {1, 2, 7, 8, 16, 31, 33, 64, 100, 1000, 4099}) {
    std::vector<float> a(n + 1), b(n + 1), c(n + 1);
    for (std::size_t i = 0; i <= n; ++i) a[i] = nd(rng), b[i] = nd(rng), c[i] = nd(rng);
    const float* x = a.data() + 1;  // misaligned on purpose
    const double ne = static_cast<double>(n + 16) * kEps;
    auto expect = [&](const char* what, std::size_t i, double got, double want, double tol) {
      if (!(std::fabs(got - want) <= tol)) {
        rep.fail(to_string(t.isa), " ", what, " n=", n, " i=", i, ": ", got, " want ", want);
      }
    };
    double mag = 0.0;
    for (std::size_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(x[i]) * b[i]);
    expect("dot", 0, t.dot(x, b.data(), n), ref.dot(x, b.data(), n), 2 * ne * mag + 1e-30);

    std::vector<float> o1(n), o2(n);
    t.rmsnorm(o1.data(), x, c.data(), n, 1e-5f);
    ref.rmsnorm(o2.data(), x, c.data(), n, 1e-5f);
    for (std::size_t i = 0; i < n; ++i)
      expect("rmsnorm", i, o1[i], o2[i], 2 * ne * std::fabs(o2[i]));

    // LayerNorm: the mean and the variance differ by reassociation, each within ne of the sum of
    // magnitudes; an output moves by the mean's error and its deviation's share of the scale's.
    // Offset inputs (x + 40) make the mean large against the deviations, the case that matters.
    for (const float offset : {0.0f, 40.0f}) {
      std::vector<float> xo(n);
      for (std::size_t i = 0; i < n; ++i) xo[i] = x[i] + offset;
      t.layernorm(o1.data(), xo.data(), c.data(), b.data(), n, 1e-5f);
      ref.layernorm(o2.data(), xo.data(), c.data(), b.data(), n, 1e-5f);
      double s = 0.0, v = 0.0;
      for (float e : xo) s += e;
      const double mean = s / static_cast<double>(n);
      for (float e : xo) v += (e - mean) * (e - mean);
      const double scale = 1.0 / std::sqrt(v / static_cast<double>(n) + 1e-5);
      const double abs_mean = std::fabs(mean) + 3.0 * 8.0;  // |x| <= |mean| + 8 sigma here
      for (std::size_t i = 0; i < n; ++i) {
        const double dev = std::fabs(xo[i] - mean);
        const double tol = 4 * ne * ((abs_mean + dev) * scale * std::fabs(c[i]) + std::fabs(b[i]));
        expect("layernorm", i, o1[i], o2[i], tol);
      }
    }

    o1.assign(x, x + n), o2.assign(x, x + n);
    t.softmax(o1.data(), n);
    ref.softmax(o2.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      expect("softmax", i, o1[i], o2[i], 2 * ne * std::fabs(o2[i]) + 1e-37);
    }

    o1.assign(x, x + n), o2.assign(x, x + n);
    t.silu_mul(o1.data(), c.data(), n);
    ref.silu_mul(o2.data(), c.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      expect("silu_mul", i, o1[i], o2[i], 32 * kEps * std::fabs(o2[i]) + 1e-37);
    }

    for (const float* up :
         {static_cast<const float*>(c.data()), static_cast<const float*>(nullptr)}) {
      o1.assign(x, x + n), o2.assign(x, x + n);
      t.gelu_mul(o1.data(), up, n);
      ref.gelu_mul(o2.data(), up, n);
      for (std::size_t i = 0; i < n; ++i) {
        // exp(arg) turns arg's rounding (a few ulp of |arg|) into a relative error of |arg| ulp,
        // and two exp implementations differ by a few ulp more.
        const double v = x[i], u = up != nullptr ? up[i] : 1.0;
        const double arg = -1.5957691216057308 * (v + 0.044715 * v * v * v);
        const double rel = (32 + 4 * std::fabs(arg)) * kEps;
        expect("gelu_mul", i, o1[i], o2[i], rel * std::fabs(o2[i]) + 1e-37);
        // The twin against PyTorch's 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))) in double,
        // written as the same logistic so that double's own cancellation at v << 0 is not the bar.
        const double want = v / (1.0 + std::exp(arg)) * u;
        const double tol = rel * std::fabs(want) + 1e-30;
        expect("gelu_mul vs double", i, o2[i], want, tol);
      }
    }

    o1.assign(x, x + n), o2.assign(x, x + n);
    t.add(o1.data(), c.data(), n);
    ref.add(o2.data(), c.data(), n);
    for (std::size_t i = 0; i < n; ++i) expect("add", i, o1[i], o2[i], 0.0);

    o1.assign(x, x + n), o2.assign(x, x + n);
    t.axpy(o1.data(), 0.37f, c.data(), n);
    ref.axpy(o2.data(), 0.37f, c.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      const double m1 = std::fabs(0.37 * c[i]) + std::fabs(static_cast<double>(x[i]));
      expect("axpy", i, o1[i], o2[i], 4 * kEps * m1);
    }

    if (n % 2 == 0) {
      const std::size_t half = n / 2;
      std::vector<float> cs(half), sn(half);
      for (std::size_t i = 0; i < half; ++i) {
        cs[i] = std::cos(0.1f * static_cast<float>(i)),
        sn[i] = std::sin(0.1f * static_cast<float>(i));
      }
      o1.assign(x, x + n), o2.assign(x, x + n);
      t.rope(o1.data(), cs.data(), sn.data(), n);
      ref.rope(o2.data(), cs.data(), sn.data(), n);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t j = i % half;
        const double m1 = std::fabs(static_cast<double>(x[j])) + std::fabs(x[j + half]);
        expect("rope", i, o1[i], o2[i], 4 * kEps * m1);
      }
    }
  }
  return rep;
}

inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Floats that exercise f32 -> f16 rounding: zeros, infinities, NaNs with every kind of payload
// (quiet, signalling, low and high bits), f32 subnormals, the f16 subnormal range and its edges,
// the overflow edge (65504, 65519.99, 65520), and for a sweep of f16 values h the exact midpoint
// between h and its successor (ties to even) and the floats one ulp either side of it.
inline std::vector<float> f16_rounding_cases() {
  std::vector<float> v;
  for (std::uint32_t u :
       {0x00000000u, 0x7f800000u, 0x7fc00000u, 0x7f800001u, 0x7fbfffffu, 0x7fffffffu, 0x7fc01234u,
        0x7fa00000u, 0x00000001u, 0x007fffffu, 0x33000000u, 0x33000001u, 0x32ffffffu, 0x387fe000u,
        0x387ff000u, 0x38800000u, 0x477fe000u, 0x477fefffu, 0x477ff000u, 0x47800000u, 0x7f7fffffu,
        0x3f800000u, 0x33800000u, 0x33c00000u, 0x34000000u}) {
    v.push_back(float_of(u));
    v.push_back(float_of(u | 0x80000000u));
  }
  for (std::uint32_t h = 0; h + 1 < 0x7c00; h += 7) {
    const double a = qlm::detail::f16_to_f32(static_cast<std::uint16_t>(h));
    const double b = qlm::detail::f16_to_f32(static_cast<std::uint16_t>(h + 1));
    const float mid = static_cast<float>((a + b) / 2);  // exact: f16 has 11 significant bits
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      v.push_back(f);
      v.push_back(-f);
    }
  }
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 4000; ++i) v.push_back(float_of(any(rng)));
  return v;
}

// f16 <-> f32 runs against the scalar twins and qlm::detail, bit for bit: every one of the 65536
// f16 values, every rounding case above, on awkward lengths and misaligned pointers (a NaN lands
// in different vector positions), and nothing written past n.
inline Report check_half(const KernelTable& t, const KernelTable& ref) {
  Report rep;
  const std::string isa(to_string(t.isa));
  std::vector<std::uint16_t> all(65536);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<float> a(all.size()), b(all.size());
  t.f16_to_f32(all.data(), a.data(), all.size());
  ref.f16_to_f32(all.data(), b.data(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::uint32_t want = bits_of(qlm::detail::f16_to_f32(all[i]));
    if (bits_of(a[i]) != want || bits_of(b[i]) != want) {
      rep.fail(isa, " f16_to_f32(0x", std::hex, i, ") = 0x", bits_of(a[i]), " (scalar 0x",
               bits_of(b[i]), ") want 0x", want);
    }
  }
  const std::vector<float> cases = f16_rounding_cases();
  std::vector<std::uint16_t> h(cases.size()), g(cases.size());
  t.f32_to_f16(cases.data(), h.data(), cases.size());
  ref.f32_to_f16(cases.data(), g.data(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::uint16_t want = qlm::detail::f32_to_f16(cases[i]);
    if (h[i] != want || g[i] != want) {
      rep.fail(isa, " f32_to_f16(0x", std::hex, bits_of(cases[i]), ") = 0x", h[i], " (scalar 0x",
               g[i], ") want 0x", want);
    }
  }
  constexpr std::uint16_t kGuard16 = 0xabcd;
  for (std::size_t n : {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000}) {
    for (std::size_t misalign : {0, 1, 3}) {
      for (std::size_t start : {std::size_t{0}, std::size_t{0x7c00}, std::size_t{0xfbf0}}) {
        Buffer<std::uint16_t> src(n + 1, 2 * misalign);
        Buffer<float> dst(n + 1, 4 * misalign);
        for (std::size_t i = 0; i < n; ++i) src[i] = static_cast<std::uint16_t>(start + i * 37);
        dst[n] = kSentinel;
        t.f16_to_f32(src.data(), dst.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
          if (bits_of(dst[i]) != bits_of(qlm::detail::f16_to_f32(src[i]))) {
            rep.fail(isa, " f16_to_f32 n=", n, " misalign=", misalign, " wrong at ", i);
          }
        }
        if (bits_of(dst[n]) != bits_of(kSentinel)) rep.fail(isa, " f16_to_f32 wrote past n=", n);

        Buffer<float> fsrc(n + 1, 4 * misalign);
        Buffer<std::uint16_t> hdst(n + 1, 2 * misalign);
        for (std::size_t i = 0; i < n; ++i) fsrc[i] = cases[(start + i * 13) % cases.size()];
        hdst[n] = kGuard16;
        t.f32_to_f16(fsrc.data(), hdst.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
          if (hdst[i] != qlm::detail::f32_to_f16(fsrc[i])) {
            rep.fail(isa, " f32_to_f16 n=", n, " misalign=", misalign, " wrong at ", i);
          }
        }
        if (hdst[n] != kGuard16) rep.fail(isa, " f32_to_f16 wrote past n=", n);
      }
    }
  }
  return rep;
}

// Attention over several blocks with table `t`: keys/values [blocks][kAttnBlock][hd] as rows (only
// the first n[b] rows of block b are used; the rest and everything past them are NaN, so a kernel
// that reads them fails), f32 or f16 (T = std::uint16_t). Each block's keys go into a dims-major
// page at a slot offset that varies with the block (0 for a full block), every other slot NaN.
// Returns the normalized outputs out[g][hd] = acc / l.
template <class T>
std::vector<float> run_attention(const KernelTable& t, const std::vector<float>& q, std::size_t g,
                                 std::size_t hd, const std::vector<std::vector<T>>& k,
                                 const std::vector<std::vector<T>>& v,
                                 const std::vector<std::size_t>& n, float scale) {
  constexpr KvType type = sizeof(T) == 2 ? KvType::F16 : KvType::F32;
  T nan;
  if constexpr (sizeof(T) == 2) {
    nan = 0x7e00;
  } else {
    nan = NAN;
  }
  std::vector<std::vector<T>> pages(n.size(), std::vector<T>(kAttnBlock * hd, nan));
  std::vector<std::size_t> first(n.size());
  for (std::size_t b = 0; b < n.size(); ++b) {
    const std::size_t room = kAttnBlock - n[b];
    first[b] = b % 2 ? room : room / 2;
    for (std::size_t r = 0; r < n[b]; ++r) {
      for (std::size_t i = 0; i < hd; ++i)
        pages[b][i * kAttnBlock + first[b] + r] = k[b][r * hd + i];
    }
  }
  std::vector<float> m(g, -INFINITY), l(g, 0.0f), acc(g * hd, 0.0f);
  for (std::size_t b = 0; b < n.size(); ++b) {
    const bool more = b + 1 < n.size();
    t.attn_block(q.data(), g, hd, pages[b].data(), first[b], v[b].data(), type, n[b], scale,
                 m.data(), l.data(), acc.data(), more ? pages[b + 1].data() : nullptr,
                 more ? v[b + 1].data() : nullptr);
  }
  for (std::size_t j = 0; j < g; ++j) {
    for (std::size_t i = 0; i < hd; ++i) acc[j * hd + i] /= l[j];
  }
  return acc;
}

// attn_block of `t` against the scalar twin (ref != nullptr) or, with ref == nullptr, against a
// two-pass softmax in double precision, on head dims that are and are not whole vectors, every
// group size up to 9 (whole 4-head tiles and their remainders) and 16, and partial blocks;
// later blocks' scores are larger so the running max (and the rescaling) changes. Bound: the
// outputs are convex combinations of v, so the error is at most max|v| * (2 * score error + exp
// error + accumulation error), with the score error (hd + 8) * eps * scale * sum|q k| per key for
// each of the two results compared.
inline Report check_attention(const KernelTable& t, const KernelTable* ref) {
  Report rep;
  const std::string isa(to_string(t.isa));
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (std::size_t hd : {2, 8, 12, 16, 40, 64, 80, 128, 136}) {
    for (std::size_t g : {1, 2, 3, 4, 5, 7, 8, 9, 16}) {
      if (hd > 64 && g != 1 && g != 4 && g != 7 && g != 8) continue;
      const std::vector<std::size_t> n = {kAttnBlock, 1, 17, kAttnBlock, 3, 31, 2};
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      std::vector<float> q(g * hd);
      for (auto& x : q) x = nd(rng);
      std::vector<std::vector<float>> k(n.size()), v(n.size());
      double max_v = 0.0, max_qk = 0.0;
      for (std::size_t b = 0; b < n.size(); ++b) {
        k[b].assign((kAttnBlock + 1) * hd, NAN);
        v[b].assign((kAttnBlock + 1) * hd, NAN);
        const float grow = 1.0f + 0.4f * static_cast<float>(b % 4);  // the max keeps moving
        for (std::size_t i = 0; i < n[b] * hd; ++i) {
          k[b][i] = grow * nd(rng);
          v[b][i] = nd(rng);
          max_v = std::max(max_v, std::fabs(static_cast<double>(v[b][i])));
        }
        for (std::size_t j = 0; j < g; ++j) {
          for (std::size_t r = 0; r < n[b]; ++r) {
            double mag = 0.0;
            for (std::size_t i = 0; i < hd; ++i) {
              mag += std::fabs(static_cast<double>(q[j * hd + i]) * k[b][r * hd + i]);
            }
            max_qk = std::max(max_qk, mag * scale);
          }
        }
      }
      std::size_t total = 0;
      for (std::size_t x : n) total += x;
      const std::vector<float> got = run_attention(t, q, g, hd, k, v, n, scale);
      std::vector<double> want(g * hd, 0.0);
      if (ref != nullptr) {
        const std::vector<float> r = run_attention(*ref, q, g, hd, k, v, n, scale);
        want.assign(r.begin(), r.end());
      } else {
        for (std::size_t j = 0; j < g; ++j) {
          std::vector<double> s;
          for (std::size_t b = 0; b < n.size(); ++b) {
            for (std::size_t r = 0; r < n[b]; ++r) {
              double d = 0.0;
              for (std::size_t i = 0; i < hd; ++i) {
                d += static_cast<double>(q[j * hd + i]) * k[b][r * hd + i];
              }
              s.push_back(d * scale);
            }
          }
          const double mx = *std::max_element(s.begin(), s.end());
          double sum = 0.0;
          for (double& x : s) sum += (x = std::exp(x - mx));
          std::size_t idx = 0;
          for (std::size_t b = 0; b < n.size(); ++b) {
            for (std::size_t r = 0; r < n[b]; ++r, ++idx) {
              for (std::size_t i = 0; i < hd; ++i) {
                want[j * hd + i] += s[idx] / sum * v[b][r * hd + i];
              }
            }
          }
        }
      }
      const double score_err = 2.0 * static_cast<double>(hd + 8) * kEps * max_qk;
      const double tol =
          max_v * (2.0 * score_err + 64.0 * kEps + static_cast<double>(total + hd + 16) * 4 * kEps);
      for (std::size_t i = 0; i < g * hd; ++i) {
        if (!(std::fabs(got[i] - want[i]) <= tol)) {
          rep.fail(isa, " attn_block hd=", hd, " g=", g, ": out[", i / hd, "][", i % hd,
                   "] = ", got[i], " want ", want[i], " (tol ", tol, ")");
          break;
        }
      }
      // f16 rows give exactly the bits of the f32 rows holding their converted values.
      std::vector<std::vector<std::uint16_t>> kh(n.size()), vh(n.size());
      std::vector<std::vector<float>> kr(n.size()), vr(n.size());
      for (std::size_t b = 0; b < n.size(); ++b) {
        for (const auto* src : {&k[b], &v[b]}) {
          auto& h = src == &k[b] ? kh[b] : vh[b];
          auto& r = src == &k[b] ? kr[b] : vr[b];
          h.resize(src->size());
          r.resize(src->size());
          for (std::size_t i = 0; i < src->size(); ++i) {
            h[i] = qlm::detail::f32_to_f16((*src)[i]);
            r[i] = qlm::detail::f16_to_f32(h[i]);
          }
        }
      }
      const std::vector<float> from16 = run_attention(t, q, g, hd, kh, vh, n, scale);
      const std::vector<float> from32 = run_attention(t, q, g, hd, kr, vr, n, scale);
      if (std::memcmp(from16.data(), from32.data(), from16.size() * 4) != 0) {
        rep.fail(isa, " attn_block hd=", hd, " g=", g, ": f16 rows differ from their f32 values");
      }
    }
  }
  return rep;
}

}  // namespace qlm::kernels::check
