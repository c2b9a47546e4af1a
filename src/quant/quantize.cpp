// The weight quantizer: each block's scale by round to nearest (Q8_0 / Q4_0 style) or by the
// weighted least-squares search (KernelTable::fit_scale), codes packed into the tile layout, and
// GPTQ's error feedback; plus dequantization and the error measures the converter reports.
#include "qlm/quant/quantize.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "detail/scale_search.hpp"
#include "kernel_table.hpp"
#include "qlm/detail/half.hpp"
#include "quant/hessian.hpp"

namespace qlm::quant {
namespace {

// The codes a type stores and the level each code stands for: Q8 levels -127..127, Q4 -8..7 and
// Q5 -16..15 are the codes themselves; Q4NL codes 0..15 index the non-linear code book.
class Grid {
 public:
  explicit Grid(DType t) : t_(t) {
    for (std::size_t i = 0; i + 1 < kQ4nlLevels.size(); ++i) {
      mid_[i] =
          0.5f * (static_cast<float>(kQ4nlLevels[i]) + static_cast<float>(kQ4nlLevels[i + 1]));
    }
  }

  // The code nearest to x * inv_d (round half to even on the uniform grids).
  int code(float x, float inv_d) const {
    const float v = x * inv_d;
    if (t_ == DType::Q4NL) {
      int c = 0;
      for (float m : mid_) c += v > m;  // branch-free: 15 compares
      return c;
    }
    const Levels lv = t_ == DType::Q8   ? Levels{-127, 127}
                      : t_ == DType::Q5 ? Levels{-16, 15}
                                        : Levels{-8, 7};
    // Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits: exact, branch-free
    // and inlined (std::nearbyint is a library call on baseline x86-64).
    const float clamped = std::clamp(v, static_cast<float>(lv.lo), static_cast<float>(lv.hi));
    const float shifted = clamped + 12582912.0f;
    std::int32_t bits;
    std::memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
  }
  float level(int code) const {
    return t_ == DType::Q4NL ? static_cast<float>(kQ4nlLevels[static_cast<std::size_t>(code)])
                             : static_cast<float>(code);
  }
  // What the tile stores for a code (Q5: 0..31, split into a nibble and a fifth bit).
  std::uint8_t stored(int code) const {
    return static_cast<std::uint8_t>(t_ == DType::Q8   ? code + 128
                                     : t_ == DType::Q4 ? code + 8
                                     : t_ == DType::Q5 ? code + 16
                                                       : code);
  }

 private:
  struct Levels {
    int lo, hi;
  };
  DType t_;
  std::array<float, 15> mid_{};
};

float inverse(float d) {
  return d != 0.0f ? 1.0f / d : 0.0f;
}

// One block of 32 values (zero-padded) and the weight of each value's squared error.
struct Block {
  float x[kBlockK] = {};
  float w[kBlockK] = {};
};

// The block scale search (KernelTable::fit_scale) for this CPU, and round to nearest, both as
// kernels/detail/scale_search.hpp defines them: the same scales on every ISA.
struct ScaleChooser {
  ScaleMethod method;
  const kernels::KernelTable* kernels = &kernels::kernels_for(kernels::detect_isa());

  float operator()(DType t, const Block& blk) const {
    if (method == ScaleMethod::Fit) return kernels->fit_scale(t, blk.x, blk.w);
    return kernels::detail::scale_search::rtn_scale(t,
                                                    kernels::detail::scale_search::extreme(blk.x));
  }
};

void load_block(std::span<const float> src, const TileGeometry& geo, std::size_t row, std::size_t b,
                std::span<const float> importance, Block& out) {
  out = Block{};
  if (row >= geo.rows) return;
  const std::size_t c0 = b * kBlockK;
  const std::size_t n = std::min(kBlockK, geo.k - c0);
  std::memcpy(out.x, src.data() + row * geo.k + c0, n * sizeof(float));
  if (importance.empty()) {
    std::fill_n(out.w, n, 1.0f);
  } else {
    for (std::size_t i = 0; i < n; ++i) out.w[i] = std::max(importance[c0 + i], 0.0f);
  }
}

// Writes one block's scale and codes for tile row r. Each byte of the row's codes is assembled
// whole: a Q4 byte holds columns c and c + 4 of an 8-column group, a Q5 bit byte the fifth bits of
// columns j, j + 4, ..., j + 28.
void store_block(DType t, const Grid& grid, const Block& blk, float d, std::size_t r,
                 std::uint8_t* quants, std::uint8_t* scales) {
  const std::uint16_t d16 = detail::f32_to_f16(d);
  std::memcpy(scales + 2 * r, &d16, 2);
  const float inv_d = inverse(d);
  std::uint8_t u[kBlockK];
  for (std::size_t c = 0; c < kBlockK; ++c) u[c] = grid.stored(grid.code(blk.x[c], inv_d));
  if (t == DType::Q8) {
    for (std::size_t c = 0; c < kBlockK; ++c) quants[q8_index(r, c)] = u[c];
    return;
  }
  if (t == DType::Q5) {
    for (std::size_t j = 0; j < 4; ++j) {
      unsigned bits = 0;
      for (std::size_t c = j; c < kBlockK; c += 4) bits |= ((u[c] >> 4) & 1u) << q5_bit(c);
      quants[q5_bit_index(r, j)] = static_cast<std::uint8_t>(bits);
    }
  }
  for (std::size_t c = 0; c < kBlockK; c += 8) {
    for (std::size_t j = 0; j < 4; ++j) {
      quants[q4_index(r, c + j)] =
          static_cast<std::uint8_t>((u[c + j] & 15) | ((u[c + j + 4] & 15) << 4));
    }
  }
}

// GPTQ on rows [g * 16, g * 16 + 16) with u = the upper Cholesky factor of H^-1: quantizing column
// j changes the row's output error least when the rest of the row absorbs e_j / u_jj * u_j,i.
// Each block of 32 columns is rounded in all 16 rows first, feeding errors back only within the
// block; then the block's errors reach the later columns of all rows at once, so each row of u
// is read once per group rather than once per row (it does not fit in cache for wide inputs).
// Every weight still receives the updates of the columns before it one at a time in column
// order, the same operations in the same order as a column-by-column loop: the same bits. The
// block update (KernelTable::gptq_update) is most of the work; its vector twins keep those bits.
void quantize_group_gptq(DType t, std::span<const float> src, const TileGeometry& geo,
                         std::size_t g, std::span<const double> u, const QuantizeOptions& options,
                         const Grid& grid, const ScaleChooser& choose,
                         std::span<std::uint8_t> out) {
  const std::size_t k = geo.k;
  const std::size_t rows = std::min(kRowGroup, geo.rows - std::min(geo.rows, g * kRowGroup));
  std::vector<double> w(rows * k);  // the group's rows as compensated so far
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < k; ++c) w[r * k + c] = src[(g * kRowGroup + r) * k + c];
  }
  std::vector<double> err(rows * kBlockK);  // e_j / u_jj of the current block, per row
  Block blk;
  for (std::size_t b = 0; b < geo.blocks; ++b) {
    std::uint8_t* quants = out.data() + geo.quant_offset(g, b);
    std::uint8_t* scales = out.data() + geo.scale_offset(g, b);
    const std::size_t c0 = b * kBlockK, n = std::min(kBlockK, k - c0);
    for (std::size_t r = rows; r < kRowGroup; ++r) {  // padding: stored as quantize_matrix does
      load_block(src, geo, g * kRowGroup + r, b, options.importance, blk);
      store_block(t, grid, blk, choose(t, blk), r, quants, scales);
    }
    for (std::size_t r = 0; r < rows; ++r) {
      double* wr = w.data() + r * k;
      blk = Block{};
      for (std::size_t i = 0; i < n; ++i) {
        blk.x[i] = static_cast<float>(wr[c0 + i]);
        blk.w[i] = options.importance.empty() ? 1.0f : std::max(options.importance[c0 + i], 0.0f);
      }
      const float d = choose(t, blk);
      const float inv_d = inverse(d);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t j = c0 + i;
        const float x = static_cast<float>(wr[j]);
        blk.x[i] = x;  // what store_block rounds: the value as compensated so far
        const double e = (x - grid.level(grid.code(x, inv_d)) * d) / u[j * k + j];
        err[r * kBlockK + i] = e;
        for (std::size_t c = j + 1; c < c0 + n; ++c) wr[c] -= e * u[j * k + c];
      }
      store_block(t, grid, blk, d, r, quants, scales);
    }
    choose.kernels->gptq_update(err.data(), kBlockK, rows, n, u.data() + c0 * k, k, c0 + n,
                                w.data());
  }
}

// Calls f(i) for i in [0, n) on `pool`, or in order on this thread without one.
template <class F>
void for_each_index(ThreadPool* pool, std::size_t n, const F& f) {
  if (pool == nullptr || pool->threads() == 1 || n <= 1) {
    for (std::size_t i = 0; i < n; ++i) f(i);
  } else {
    pool->parallel_for(n, [&](std::size_t i) { f(i); });
  }
}

}  // namespace

std::vector<double> gptq_factor(std::span<const float> hessian, std::size_t k) {
  return gptq::inverse_cholesky_upper(hessian, k);
}

void quantize_matrix(DType t, std::span<const float> src, std::size_t rows, std::size_t k,
                     std::span<std::uint8_t> out, const QuantizeOptions& options) {
  const TileGeometry geo(t, rows, k);
  const Grid grid(t);
  const ScaleChooser choose{options.method};
  if (!options.hessian.empty()) {
    std::vector<double> own;
    std::span<const double> u = options.hessian_factor;
    if (u.size() != k * k) u = own = gptq_factor(options.hessian, k);
    // Rows are independent given u, so the result does not depend on the thread count.
    for_each_index(options.pool, geo.groups, [&](std::size_t g) {
      quantize_group_gptq(t, src, geo, g, u, options, grid, choose, out);
    });
    return;
  }
  // Tiles are independent, so the result does not depend on the thread count.
  for_each_index(options.pool, geo.groups, [&](std::size_t ug) {
    Block blk;
    for (std::size_t b = 0; b < geo.blocks; ++b) {
      std::uint8_t* quants = out.data() + geo.quant_offset(ug, b);
      std::uint8_t* scales = out.data() + geo.scale_offset(ug, b);
      for (std::size_t r = 0; r < kRowGroup; ++r) {
        load_block(src, geo, ug * kRowGroup + r, b, options.importance, blk);
        const float d = choose(t, blk);
        store_block(t, grid, blk, d, r, quants, scales);
      }
    }
  });
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
        const int nibble = q4_high(c) ? byte >> 4 : byte & 0x0f;
        if (t == DType::Q5) {
          q = nibble + 16 * ((quants[q5_bit_index(r, c)] >> q5_bit(c)) & 1) - 16;
        } else {
          q = t == DType::Q4 ? nibble - 8 : kQ4nlLevels[static_cast<std::size_t>(nibble)];
        }
      }
      out[c0 + c] = static_cast<float>(q) * d;
    }
  }
}

double weighted_error(DType t, std::span<const float> src, std::span<const std::uint8_t> data,
                      std::size_t rows, std::size_t k, std::span<const float> importance,
                      ThreadPool* pool) {
  const std::vector<double> e = row_errors(t, src, data, rows, k, importance, {}, pool);
  return std::accumulate(e.begin(), e.end(), 0.0);
}

}  // namespace qlm::quant

namespace qlm::quant {

double hessian_error(DType t, std::span<const float> src, std::span<const std::uint8_t> data,
                     std::size_t rows, std::size_t k, std::span<const float> hessian,
                     ThreadPool* pool) {
  const std::vector<double> e = row_errors(t, src, data, rows, k, {}, hessian, pool);
  return std::accumulate(e.begin(), e.end(), 0.0);
}

std::vector<double> row_errors(DType t, std::span<const float> src,
                               std::span<const std::uint8_t> data, std::size_t rows, std::size_t k,
                               std::span<const float> importance, std::span<const float> hessian,
                               ThreadPool* pool) {
  std::vector<double> out(rows, 0.0);
  // Rows are independent and each is summed in one order, so any pool gives these bits. Tasks of
  // 16 rows share their scratch rows.
  constexpr std::size_t kTaskRows = 16;
  for_each_index(pool, (rows + kTaskRows - 1) / kTaskRows, [&](std::size_t task) {
    std::vector<float> row(k);
    std::vector<double> e(k);
    for (std::size_t r = task * kTaskRows; r < std::min(rows, (task + 1) * kTaskRows); ++r) {
      dequantize_row(t, data, rows, k, r, row);
      for (std::size_t c = 0; c < k; ++c) e[c] = static_cast<double>(src[r * k + c]) - row[c];
      double err = 0.0;
      if (hessian.empty()) {
        for (std::size_t c = 0; c < k; ++c)
          err += (importance.empty() ? 1.0 : importance[c]) * e[c] * e[c];
      } else {
        for (std::size_t i = 0; i < k; ++i) {
          double s = 0.0;
          for (std::size_t j = 0; j < k; ++j) s += hessian[i * k + j] * e[j];
          err += e[i] * s;
        }
      }
      out[r] = err;
    }
  });
  return out;
}

}  // namespace qlm::quant
