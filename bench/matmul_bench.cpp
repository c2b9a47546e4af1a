// What storing a matrix in row bands costs the matmul driver: the same q4nl weights as one band
// or as 16 (each laid out as a matrix of its own, as a mixed file stores them), at a decode shape
// (1 activation row, weights streamed from DRAM) and a prompt shape (64 rows), on 1 and 2 threads.
// The bits are identical either way (tests/model/row_bands_test.cpp); only time may differ.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernel_table.hpp"
#include "model_weights.hpp"
#include "ops/matmul.hpp"
#include "qlm/quant/layout.hpp"
#include "qlm/quant/quantize.hpp"
#include "qlm/thread_pool.hpp"

namespace {

using qlm::DType;

constexpr std::size_t kRows = 1536, kK = 576;  // SmolLM2-135M's gate_proj
constexpr DType kType = DType::Q4NL;
constexpr std::size_t kDramBytes = std::size_t{320} << 20;  // > 3x the L3

// Rows [r0, r1) of a tile-layout matrix as a matrix of their own: their quantized tiles, then
// their scales.
std::vector<std::uint8_t> band_bytes(const std::vector<std::uint8_t>& whole, std::size_t r0,
                                     std::size_t r1) {
  const qlm::quant::TileGeometry all(kType, kRows, kK), part(kType, r1 - r0, kK);
  const std::size_t g0 = r0 / qlm::kRowGroup, g1 = g0 + part.groups;
  std::vector<std::uint8_t> out(whole.begin() + all.quant_offset(g0, 0),
                                whole.begin() + all.quant_offset(g1, 0));
  out.insert(out.end(), whole.begin() + all.scale_offset(g0, 0),
             whole.begin() + all.scale_offset(g1, 0));
  return out;
}

// Enough copies of the matrix, cut into `bands` bands, to stream from DRAM.
struct Copies {
  std::vector<std::uint8_t> bytes;
  std::vector<qlm::detail::Matrix> matrices;
  Copies(std::size_t bands) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<float> w(kRows * kK);
    for (float& v : w) v = nd(rng);
    std::vector<std::uint8_t> whole(qlm::quant::TileGeometry(kType, kRows, kK).total_bytes());
    qlm::quant::quantize_matrix(kType, w, kRows, kK, whole);
    std::vector<std::uint8_t> one;
    std::vector<std::size_t> starts;
    const std::size_t step = kRows / bands;  // 96 rows: whole row groups
    for (std::size_t r0 = 0; r0 < kRows; r0 += step) {
      starts.push_back(one.size());
      const auto b = band_bytes(whole, r0, r0 + step);
      one.insert(one.end(), b.begin(), b.end());
    }
    const std::size_t copies = kDramBytes / one.size() + 1;
    bytes.resize(copies * one.size());
    for (std::size_t c = 0; c < copies; ++c)
      std::memcpy(bytes.data() + c * one.size(), one.data(), one.size());
    for (std::size_t c = 0; c < copies; ++c) {
      qlm::detail::Matrix m{kRows, kK, {}};
      for (std::size_t b = 0; b < starts.size(); ++b) {
        const std::size_t end = b + 1 < starts.size() ? starts[b + 1] : one.size();
        m.bands.push_back({kType,
                           static_cast<std::uint32_t>(b * step),
                           static_cast<std::uint32_t>(step),
                           {bytes.data() + c * one.size() + starts[b], end - starts[b]}});
      }
      matrices.push_back(std::move(m));
    }
  }
};

void BM_Matmul(benchmark::State& state) {
  const auto bands = static_cast<std::size_t>(state.range(0));
  const auto m = static_cast<std::size_t>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  const Copies copies(bands);
  const auto& kt = qlm::kernels::kernels_for(qlm::kernels::detect_isa());
  const auto pool = qlm::make_spin_pool(threads);
  std::vector<float> x(m * kK), y(m * kRows), scratch;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  qlm::ops::QuantizedActivations act;
  act.quantize(kt, x.data(), m, kK, kK);
  std::size_t i = 0;
  for (auto _ : state) {
    qlm::ops::matmul(kt, *pool, copies.matrices[i++ % copies.matrices.size()], act, y.data(), kRows,
                     scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(copies.bytes.size() / copies.matrices.size()));
  state.SetLabel(std::string(qlm::kernels::to_string(kt.isa)));
}

BENCHMARK(BM_Matmul)
    ->ArgNames({"bands", "m", "threads"})
    ->ArgsProduct({{1, 4, 16}, {1, 64}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
