// Matmul driver. Work is cut into chunks of whole 16-row groups; the kernels guarantee identical
// bits for any chunking, so results never depend on the thread count.
#include "ops/matmul.hpp"
#include "ops/row_tasks.hpp"

#include <algorithm>
#include <array>

#include "qlm/format/dtype.hpp"

namespace qlm::ops {

void QuantizedActivations::reserve(std::size_t m, std::size_t k, bool split) {
  const auto size = kernels::quantized_rows_size(split ? 2 * m : m, k);
  if (q_.size() < size.q) q_.resize(size.q);
  if (d_.size() < size.d) d_.resize(size.d);
  if (s_.size() < size.s) s_.resize(size.s);
  if (split && residual_.size() < m * k) residual_.resize(m * k);
}

void QuantizedActivations::quantize(const kernels::KernelTable& kt, const float* x, std::size_t m,
                                    std::size_t k, std::size_t ldx, bool split, ThreadPool* pool) {
  prepare(x, m, k, ldx, split);
  for_row_ranges(pool, m, [&](std::size_t i0, std::size_t i1) { quantize_range(kt, i0, i1); });
}

void QuantizedActivations::prepare(const float* x, std::size_t m, std::size_t k, std::size_t ldx,
                                   bool split) {
  reserve(m, k, split);
  const std::size_t blocks = kernels::quantized_rows_size(1, k).blocks;
  rows_ = {q_.data(), d_.data(), s_.data(), blocks, split ? 2 * m : m};
  split_ = split;
  x_ = x;
  k_ = k;
  ldx_ = ldx;
}

void QuantizedActivations::quantize_range(const kernels::KernelTable& kt, std::size_t i0,
                                          std::size_t i1) {
  const std::size_t blocks = rows_.blocks, b0 = i0 * blocks, k = k_, m = tokens();
  constexpr std::size_t kBlock = kernels::kActBlock;
  kt.quantize_rows(x_ + i0 * ldx_, i1 - i0, k, ldx_, q_.data() + b0 * kBlock, d_.data() + b0,
                   s_.data() + b0);
  if (!split_) return;
  for (std::size_t i = i0; i < i1; ++i) residual(kt, i, 0, k);
  const std::size_t off = (m + i0) * blocks;  // residual rows follow all m first rows
  kt.quantize_rows(residual_.data() + i0 * k, i1 - i0, k, k, q_.data() + off * kBlock,
                   d_.data() + off, s_.data() + off);
}

void QuantizedActivations::quantize_blocks(const kernels::KernelTable& kt, std::size_t i,
                                           std::size_t b0, std::size_t b1) {
  constexpr std::size_t kBlock = kernels::kActBlock;
  const std::size_t blocks = rows_.blocks, k = k_;
  const std::size_t j0 = b0 * kBlock, j1 = std::min(k, b1 * kBlock);
  // Blocks are quantized independently: a part of a row is a shorter row with its own blocks.
  const std::size_t at = i * blocks + b0;
  kt.quantize_rows(x_ + i * ldx_ + j0, 1, j1 - j0, ldx_, q_.data() + at * kBlock, d_.data() + at,
                   s_.data() + at);
  if (!split_) return;
  residual(kt, i, j0, j1);
  const std::size_t off = (tokens() + i) * blocks + b0;
  kt.quantize_rows(residual_.data() + i * k + j0, 1, j1 - j0, k, q_.data() + off * kBlock,
                   d_.data() + off, s_.data() + off);
}

void QuantizedActivations::residual(const kernels::KernelTable& kt, std::size_t i, std::size_t j0,
                                    std::size_t j1) {
  const std::size_t blocks = rows_.blocks, b0 = j0 / kernels::kActBlock;
  kt.act_residual(x_ + i * ldx_ + j0, q_.data() + i * blocks * kernels::kActBlock + j0,
                  d_.data() + i * blocks + b0, j1 - j0, residual_.data() + i * k_ + j0);
}

namespace {

// Tasks of a region of `groups` row groups: enough to balance threads, few enough that each task
// streams a long run of weights.
std::size_t task_count(std::size_t groups, int threads) {
  return std::min(groups, static_cast<std::size_t>(std::max(1, threads)) * 4);
}

// One band of one product: y's columns [row0, row0 + rows) = band · act.
struct BandProduct {
  const detail::MatrixBand* band = nullptr;
  std::size_t k = 0;
  float* y = nullptr;  // already offset to the band's first output column
  std::size_t ldy = 0;
};

// Row groups per GEMM call of a split (int8x2) product: 256 output columns, whose 2m partial
// rows (64 KiB at m = 32) are summed before the next call overwrites the cache.
constexpr std::size_t kSplitGroups = 16;

// Bands per parallel region: a fused q/k/v or gate/up of a mixed file with up to 16 bands per
// matrix (the recipe's default) stays one region.
constexpr std::size_t kMaxFused = 64;

// Whether a split product of m rows runs its two passes as separate GEMM calls (the first straight
// into y, only the residual through scratch): from 6 rows on. Below, one call over both passes'
// rows reads each weight once for both (the GEMV's 1 or 2 rows; from 3, the AVX-512 VNNI
// micro-kernel's 8-row panels). Measured in 2-thread lanes (bench/RESULTS.md, session 24): apart
// was 14% slower at 4 rows, 4% at 5, even at 6 and 2-3% faster at 7 and 8.
bool passes_apart(std::size_t m) {
  return m >= 6;
}

// Band i's row groups g0..g1 (band-local) for all activation rows.
void band_product(const kernels::KernelTable& kt, const BandProduct& p,
                  const QuantizedActivations& act, float* part, std::size_t g0, std::size_t g1) {
  const detail::MatrixBand& b = *p.band;
  const kernels::GemmFn gemm = kt.gemm_for(b.dtype);
  const std::size_t m = act.tokens();
  if (gemm == nullptr) {
    const std::size_t r0 = g0 * kRowGroup, r1 = std::min<std::size_t>(b.rows, g1 * kRowGroup);
    kt.gemm_float(b.data.data(), b.dtype, p.k, act.source(), m, act.ldx(), p.y, p.ldy, r0, r1);
    return;
  }
  if (!act.split()) {
    gemm(b.data.data(), b.rows, p.k, act.rows(), p.y, p.ldy, g0, g1);
    return;
  }
  // A few row groups at a time, so the partial rows are summed while they are still in cache (a
  // whole task's columns of the output matrix's partial rows may not fit in L2). Each sum is
  // first pass + residual pass, one rounding, whichever way the passes are computed.
  const kernels::QuantizedRows& all = act.rows();
  const std::size_t at = m * all.blocks;  // the residual rows' first block
  const kernels::QuantizedRows first{all.q, all.d, all.s, all.blocks, m};
  const kernels::QuantizedRows second{all.q + at * kernels::kActBlock, all.d + at, all.s + at,
                                      all.blocks, m};
  const bool apart = passes_apart(m);
  for (std::size_t s0 = g0; s0 < g1; s0 += kSplitGroups) {
    const std::size_t s1 = std::min(g1, s0 + kSplitGroups);
    const std::size_t r0 = s0 * kRowGroup, r1 = std::min<std::size_t>(b.rows, s1 * kRowGroup);
    if (apart) {
      gemm(b.data.data(), b.rows, p.k, first, p.y, p.ldy, s0, s1);
      gemm(b.data.data(), b.rows, p.k, second, part, b.rows, s0, s1);
    } else {
      gemm(b.data.data(), b.rows, p.k, all, part, b.rows, s0, s1);
    }
    const float* lo = part + (apart ? 0 : m * b.rows);  // the residual pass's rows
    for (std::size_t row = 0; row < m; ++row) {
      float* y = p.y + row * p.ldy + r0;
      if (!apart) std::copy_n(part + row * b.rows + r0, r1 - r0, y);
      kt.add(y, lo + row * b.rows + r0, r1 - r0);
    }
  }
}

// All bands share one parallel region: their row groups, numbered one after another, are cut
// into tasks of near-equal size, the larger first, so threads that claim tasks as they finish
// end within a group of each other (36 groups in 8 tasks of 5 and 4, not 7 of 5 and one of 1). A
// task may cover the end of one band and the start of the next. A row's bits do not depend on its
// task, so neither does the result. Float bands (f32, f16, bf16) read the float activations;
// integer ones the quantized rows.
void fused_matmul(const kernels::KernelTable& kt, ThreadPool& pool,
                  std::span<const BandProduct> fused, const QuantizedActivations& act,
                  std::vector<float>& scratch) {
  const std::size_t n = fused.size(), m = act.tokens();
  // Split activations: each band's residual-pass rows (and below passes_apart, its first-pass
  // rows too) go to scratch first and are summed into y by the task that computed them (while they
  // are in cache).
  std::array<std::size_t, kMaxFused + 1> first_group{}, scratch_at{};
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t rows = fused[i].band->rows;
    first_group[i + 1] = first_group[i] + (rows + kRowGroup - 1) / kRowGroup;
    const bool split = act.split() && is_quantized(fused[i].band->dtype);
    const std::size_t passes = passes_apart(m) ? 1 : 2;
    scratch_at[i + 1] = scratch_at[i] + (split ? passes * m * rows : 0);
  }
  if (scratch.size() < scratch_at[n]) scratch.resize(scratch_at[n]);
  const std::size_t total = first_group[n], tasks = task_count(total, pool.threads());
  if (tasks == 0) return;
  const std::size_t base = total / tasks, extra = total % tasks;
  const auto start = [&](std::size_t t) { return t * base + std::min(t, extra); };
  pool.parallel_for(tasks, [&](std::size_t t) {
    const std::size_t g0 = start(t), g1 = start(t + 1);
    std::size_t i = 0;
    while (first_group[i + 1] <= g0) ++i;
    for (; i < n && first_group[i] < g1; ++i) {
      const std::size_t lo = std::max(g0, first_group[i]), hi = std::min(g1, first_group[i + 1]);
      if (lo == hi) continue;  // an empty band
      band_product(kt, fused[i], act, scratch.data() + scratch_at[i], lo - first_group[i],
                   hi - first_group[i]);
    }
  });
}

}  // namespace

void matmul(const kernels::KernelTable& kt, ThreadPool& pool, const detail::Matrix& w,
            const QuantizedActivations& act, float* y, std::size_t ldy,
            std::vector<float>& scratch) {
  const Product p{&w, y, ldy};
  matmul(kt, pool, std::span(&p, 1), act, scratch);
}

void matmul(const kernels::KernelTable& kt, ThreadPool& pool, std::span<const Product> products,
            const QuantizedActivations& act, std::vector<float>& scratch) {
  // Up to kMaxFused bands per region (q/k/v or gate/up in one band each is one region, so a
  // decode step pays one fork/join per input).
  std::array<BandProduct, kMaxFused> fused{};
  std::size_t n = 0;
  for (const Product& p : products) {
    for (const detail::MatrixBand& b : p.w->bands) {
      const BandProduct bp{&b, p.w->k, p.y + b.row0, p.ldy};
      if (n == kMaxFused) {
        fused_matmul(kt, pool, std::span(fused.data(), n), act, scratch);
        n = 0;
      }
      fused[n++] = bp;
    }
  }
  if (n > 0) fused_matmul(kt, pool, std::span(fused.data(), n), act, scratch);
}

}  // namespace qlm::ops
