// Reference quantizers: per-block scales chosen by round-to-nearest (Q8_0 / Q4_0 style) or by a
// weighted least-squares search, written for clarity; kernels/ and the tests compare against these.
#include "qlm/quant/quantize.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

#include "qlm/detail/half.hpp"
#include "quant/hessian.hpp"

namespace qlm::quant {
namespace {

constexpr float kF16Max = 65504.0f;

float round_f16(float d) {
  return detail::f16_to_f32(detail::f32_to_f16(d));
}

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
    // and inlined (std::nearbyint is a library call on baseline x86-64), which matters because
    // the scale search calls this millions of times.
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

float block_extreme(const Block& b) {
  float max = 0.0f;
  for (float v : b.x) max = std::fabs(v) > std::fabs(max) ? v : max;
  return max;
}

// Round-to-nearest scale: Q8 d = amax / 127; Q4 maps the largest-magnitude value to -8 (so its
// sign decides the direction) as llama.cpp's Q4_0 does, Q5 to -16 (Q5_0); Q4NL maps it to the
// code book's -127.
float rtn_scale(DType t, const Block& b) {
  const float max = block_extreme(b);
  const float d = t == DType::Q8   ? std::fabs(max) / 127.0f
                  : t == DType::Q4 ? max / -8.0f
                  : t == DType::Q5 ? max / -16.0f
                                   : max / -127.0f;
  return round_f16(d);
}

// The scale search evaluates each candidate (refit d = sum w x L / sum w L^2 for the codes a
// target assigns, rounded to f16, and its error) first with element-wise loops over the block and
// sums in four lanes, which the compiler vectorizes, and only where that cannot decide the
// outcome with sequential sums in column order, the search's definition (docs/quantization.md).
// Both see the same terms (each computed by the same float operations), so they differ only in the
// order of additions: for n = 32 terms each sum is within 31 u * sum |term| (u = 2^-24) of the
// exact one, so the two are within 3.7e-6 * sum |term| of each other. kSlack covers that with room
// for the rounding of the bounds themselves; a fast decision is made only when the whole interval
// agrees, so the chosen scales are bit for bit those of the sequential search.
constexpr float kSlack = 1e-5f;

// Level of every value of the block under inverse scale `inv`, as Grid::level(Grid::code(x, inv))
// computes it, for one type known at compile time (so the loop has no branch on the type).
template <DType T>
void block_levels(const float* x, float inv, float* out) {
  if constexpr (T == DType::Q4NL) {
    for (std::size_t i = 0; i < kBlockK; ++i) {
      const float v = x[i] * inv;
      // Level 0 plus each step the value is above the midpoint of: exact small integers.
      float l = static_cast<float>(kQ4nlLevels[0]);
      for (std::size_t m = 0; m + 1 < kQ4nlLevels.size(); ++m) {
        const float lo = static_cast<float>(kQ4nlLevels[m]);
        const float hi = static_cast<float>(kQ4nlLevels[m + 1]);
        l += v > 0.5f * (lo + hi) ? hi - lo : 0.0f;
      }
      out[i] = l;
    }
  } else {
    constexpr float lo = T == DType::Q8 ? -127.0f : T == DType::Q5 ? -16.0f : -8.0f;
    constexpr float hi = T == DType::Q8 ? 127.0f : T == DType::Q5 ? 15.0f : 7.0f;
    for (std::size_t i = 0; i < kBlockK; ++i) {
      const float v = x[i] * inv;
      const float clamped = std::min(std::max(v, lo), hi);  // as std::clamp, but vectorized
      // Grid::code's rounding: the sum is exact in [2^23, 2^24), so subtracting gives the integer.
      out[i] = (clamped + 12582912.0f) - 12582912.0f;
    }
  }
}

// Sum of 32 terms in four lanes (one SSE/NEON register), and the sum of their magnitudes (the
// error bound's scale). Terms known to be >= 0 (weights are) are their own magnitudes.
struct LaneSum {
  float sum, abs;
};
inline float lane_sum(const float* t) {
  float acc[4] = {};
  for (std::size_t i = 0; i < kBlockK; i += 4) {
    for (std::size_t j = 0; j < 4; ++j) acc[j] += t[i + j];
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
inline LaneSum lane_sum_abs(const float* t) {
  float mag[4] = {};
  for (std::size_t i = 0; i < kBlockK; i += 4) {
    for (std::size_t j = 0; j < 4; ++j) mag[j] += std::fabs(t[i + j]);
  }
  return {lane_sum(t), (mag[0] + mag[1]) + (mag[2] + mag[3])};
}

float sequential_sum(const float* t) {
  float s = 0.0f;
  for (std::size_t i = 0; i < kBlockK; ++i) s += t[i];
  return s;
}

// round_f16(refit(b, iscale)), exactly.
template <DType T>
float fitted_scale(const Block& b, float iscale) {
  alignas(32) float l[kBlockK], wxl[kBlockK], wll[kBlockK];
  block_levels<T>(b.x, iscale, l);
  for (std::size_t i = 0; i < kBlockK; ++i) {
    wxl[i] = b.w[i] * b.x[i] * l[i];
    wll[i] = b.w[i] * l[i] * l[i];
  }
  const LaneSum a = lane_sum_abs(wxl);
  const float c_sum = lane_sum(wll);
  const LaneSum c = {c_sum, c_sum};  // w L^2 >= 0
  const float ma = kSlack * a.abs, mc = kSlack * c.abs;
  if (std::isfinite(a.sum) && std::isfinite(c.sum) && c.sum - mc > 0.0f) {
    // round_f16 of a quotient is monotone in each of its operands: the interval's ends decide.
    const float q[4] = {(a.sum - ma) / (c.sum - mc), (a.sum - ma) / (c.sum + mc),
                        (a.sum + ma) / (c.sum - mc), (a.sum + ma) / (c.sum + mc)};
    const float lo = round_f16(*std::min_element(q, q + 4));
    const float hi = round_f16(*std::max_element(q, q + 4));
    if (lo == hi) return lo;
  }
  const float sxl = sequential_sum(wxl), sll = sequential_sum(wll);
  return round_f16(sll > 0.0f ? sxl / sll : 0.0f);
}

// A candidate scale's weighted squared errors, element by element, with their lane sum and how
// far from it the sequential sum can be.
struct Errors {
  alignas(32) float terms[kBlockK];
  float fast = 0.0f, margin = 0.0f;
};

template <DType T>
void block_errors(const Block& b, float d, Errors& out) {
  alignas(32) float l[kBlockK];
  block_levels<T>(b.x, inverse(d), l);
  for (std::size_t i = 0; i < kBlockK; ++i) {
    const float e = b.x[i] - l[i] * d;
    out.terms[i] = b.w[i] * e * e;
  }
  out.fast = lane_sum(out.terms);  // w e^2 >= 0: its own magnitude
  out.margin = std::isfinite(out.fast) ? kSlack * out.fast : std::numeric_limits<float>::infinity();
}

// Whether a's sequential sum is below b's, deciding by the lane sums where their intervals do not
// meet.
bool lower(const Errors& a, const Errors& b) {
  if (a.fast + a.margin < b.fast - b.margin) return true;
  if (a.fast - a.margin >= b.fast + b.margin) return false;
  return sequential_sum(a.terms) < sequential_sum(b.terms);
}

// Where the search puts the block's extreme, in level units: around the grid's negative end
// (allowing it to clip) and around its positive end. Coarse steps, refined around the best.
struct SearchRange {
  float lo, hi;
};
struct Search {
  std::array<SearchRange, 2> ranges;
  std::size_t count;
  float step;
};
Search search_for(DType t) {
  switch (t) {
    case DType::Q8:
      return {{{{122.0f, 127.0f}, {0.0f, 0.0f}}}, 1, 1.0f};
    case DType::Q4NL:
      return {{{{-180.0f, -95.0f}, {95.0f, 180.0f}}}, 2, 5.0f};
    case DType::Q5:
      return {{{{-22.0f, -13.0f}, {13.0f, 18.0f}}}, 2, 0.5f};
    default:
      return {{{{-12.0f, -6.0f}, {6.0f, 10.0f}}}, 2, 0.5f};
  }
}

// Searches the scale candidate by candidate, refitting each by least squares. Starts from Rtn and
// keeps a candidate only if it is better, so it is never worse than Rtn.
template <DType T>
float fit_scale(const Block& b) {
  float best_d = rtn_scale(T, b);
  Errors buffers[2];
  Errors* best = &buffers[0];
  Errors* next = &buffers[1];
  block_errors<T>(b, best_d, *best);
  const float max = block_extreme(b);
  // The terms are >= 0, so their sum is 0 in any order exactly when all are.
  if (max == 0.0f || best->fast == 0.0f) return best_d;
  float best_target = 0.0f;
  auto consider = [&](float target) {
    const float d = fitted_scale<T>(b, target / max);
    // The same scale has the same error, which is not lower: nothing to evaluate.
    if (!(std::fabs(d) <= kF16Max) || d == best_d) return;
    block_errors<T>(b, d, *next);
    if (lower(*next, *best)) {
      std::swap(best, next);
      best_d = d;
      best_target = target;
    }
  };
  const Search search = search_for(T);
  for (std::size_t r = 0; r < search.count; ++r) {
    for (float target = search.ranges[r].lo; target <= search.ranges[r].hi; target += search.step) {
      consider(target);
    }
  }
  if (best_target != 0.0f) {
    const float center = best_target;
    for (float f : {-0.375f, -0.25f, -0.125f, 0.125f, 0.25f, 0.375f})
      consider(center + f * search.step);
  }
  return best_d;
}

float fit_scale(DType t, const Block& b) {
  switch (t) {
    case DType::Q8:
      return fit_scale<DType::Q8>(b);
    case DType::Q5:
      return fit_scale<DType::Q5>(b);
    case DType::Q4NL:
      return fit_scale<DType::Q4NL>(b);
    default:
      return fit_scale<DType::Q4>(b);
  }
}

void load_block(std::span<const float> src, const TileGeometry& geo, std::size_t row, std::size_t b,
                std::span<const float> importance, Block& out) {
  out = Block{};
  if (row >= geo.rows) return;
  const std::size_t c0 = b * kBlockK;
  const std::size_t n = std::min(kBlockK, geo.k - c0);
  std::memcpy(out.x, src.data() + row * geo.k + c0, n * sizeof(float));
  for (std::size_t i = 0; i < n; ++i)
    out.w[i] = importance.empty() ? 1.0f : std::max(importance[c0 + i], 0.0f);
}

void store_block(DType t, const Grid& grid, const Block& blk, float d, std::size_t r,
                 std::uint8_t* quants, std::uint8_t* scales) {
  const std::uint16_t d16 = detail::f32_to_f16(d);
  std::memcpy(scales + 2 * r, &d16, 2);
  const float inv_d = inverse(d);
  for (std::size_t c = 0; c < kBlockK; ++c) {
    std::uint8_t u = grid.stored(grid.code(blk.x[c], inv_d));
    if (t == DType::Q8) {
      quants[q8_index(r, c)] = u;
    } else {
      if (t == DType::Q5) {
        std::uint8_t& bits = quants[q5_bit_index(r, c)];
        const auto mask = static_cast<std::uint8_t>(1u << q5_bit(c));
        bits = static_cast<std::uint8_t>((u & 16) ? bits | mask : bits & ~mask);
        u = static_cast<std::uint8_t>(u & 15);
      }
      std::uint8_t& byte = quants[q4_index(r, c)];
      byte = static_cast<std::uint8_t>(q4_high(c) ? (byte & 0x0f) | (u << 4) : (byte & 0xf0) | u);
    }
  }
}

float choose_scale(DType t, const Block& blk, ScaleMethod method) {
  return method == ScaleMethod::Fit ? fit_scale(t, blk) : rtn_scale(t, blk);
}

// GPTQ on rows [g * 16, g * 16 + 16) with u = the upper Cholesky factor of H^-1: quantizing column
// j changes the row's output error least when the rest of the row absorbs e_j / u_jj * u_j,i.
// Each block of 32 columns is rounded in all 16 rows first, feeding errors back only within the
// block; then the block's errors reach the later columns of all rows at once, so each row of u
// is read once per group rather than once per row (it does not fit in cache for wide inputs).
// Every weight still receives the updates of the columns before it one at a time in column
// order, the same operations in the same order as a column-by-column loop: the same bits.
void quantize_group_gptq(DType t, std::span<const float> src, const TileGeometry& geo,
                         std::size_t g, const std::vector<double>& u,
                         const QuantizeOptions& options, const Grid& grid,
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
      store_block(t, grid, blk, choose_scale(t, blk, options.method), r, quants, scales);
    }
    for (std::size_t r = 0; r < rows; ++r) {
      double* wr = w.data() + r * k;
      blk = Block{};
      for (std::size_t i = 0; i < n; ++i) {
        blk.x[i] = static_cast<float>(wr[c0 + i]);
        blk.w[i] = options.importance.empty() ? 1.0f : std::max(options.importance[c0 + i], 0.0f);
      }
      const float d = choose_scale(t, blk, options.method);
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
    for (std::size_t i = 0; i < n; ++i) {  // the block's errors, column by column, to the rest
      const double* uj = u.data() + (c0 + i) * k;
      for (std::size_t r = 0; r < rows; ++r) {
        const double e = err[r * kBlockK + i];
        double* wr = w.data() + r * k;
        for (std::size_t c = c0 + n; c < k; ++c) wr[c] -= e * uj[c];
      }
    }
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

void quantize_matrix(DType t, std::span<const float> src, std::size_t rows, std::size_t k,
                     std::span<std::uint8_t> out, const QuantizeOptions& options) {
  const TileGeometry geo(t, rows, k);
  const Grid grid(t);
  if (!options.hessian.empty()) {
    const std::vector<double> u = gptq::inverse_cholesky_upper(options.hessian, k);
    // Rows are independent given u, so the result does not depend on the thread count.
    for_each_index(options.pool, geo.groups, [&](std::size_t g) {
      quantize_group_gptq(t, src, geo, g, u, options, grid, out);
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
        const float d = choose_scale(t, blk, options.method);
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
