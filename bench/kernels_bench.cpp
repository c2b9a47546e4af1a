// Kernel benchmarks: Q8/Q4/Q4NL/Q5 GEMV at decode shapes streaming weights from DRAM (GB/s), GEMM
// at 128 and 512 rows (int8 ops/s), f16/bf16/f32 GEMV and GEMM (GB/s, Gflop/s), decode attention
// over a long KV cache (GB/s of keys and values), 1 and 2 threads, the converter's block scale
// search (blocks/s, one thread), activation quantization of a 16-row batch (blocks/s, one
// thread), and a read-bandwidth probe for reference.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernel_table.hpp"
#include "kv_fill.hpp"
#include "qlm/detail/half.hpp"
#include "qlm/format/dtype.hpp"
#include "qlm/quant/layout.hpp"
#include "read_probe.hpp"

namespace {

using qlm::DType;
using qlm::KvType;
using namespace qlm::kernels;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Bytes = std::unique_ptr<std::uint8_t, FreeDeleter>;

Bytes alloc64(std::size_t n) {
  return Bytes(static_cast<std::uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)));
}

constexpr std::size_t kDramBytes = std::size_t{320} << 20;  // > 3x the 105 MiB L3

// `copies` weight matrices back to back (each 64-byte aligned): random codes, sane f16 scales.
struct WeightSet {
  Bytes data;
  std::size_t stride = 0, copies = 0, bytes = 0;
  WeightSet(DType t, std::size_t n, std::size_t k, std::size_t min_total) {
    const qlm::quant::TileGeometry geo(t, n, k);
    bytes = geo.total_bytes();
    stride = (bytes + 63) / 64 * 64;
    copies = std::max<std::size_t>(1, (min_total + stride - 1) / stride);
    data = alloc64(stride * copies);
    std::mt19937 rng(1);
    const std::size_t scale_at = geo.tiles() * geo.quant_bytes;
    std::vector<std::uint8_t> one(bytes);
    for (std::size_t i = 0; i < scale_at; ++i) one[i] = static_cast<std::uint8_t>(rng());
    for (std::size_t i = scale_at; i + 1 < bytes; i += 2) {
      one[i] = 0x1f, one[i + 1] = 0x21;  // f16 ~0.01
    }
    for (std::size_t c = 0; c < copies; ++c)
      std::memcpy(data.get() + c * stride, one.data(), bytes);
  }
  const std::uint8_t* at(std::size_t i) const { return data.get() + (i % copies) * stride; }
};

struct Acts {
  std::vector<std::int8_t> q;
  std::vector<float> d;
  std::vector<std::int32_t> s;
  QuantizedRows rows;
  Acts(const KernelTable& t, std::size_t m, std::size_t k) {
    const auto sz = quantized_rows_size(m, k);
    q.resize(sz.q), d.resize(sz.d), s.resize(sz.s);
    std::vector<float> x(m * k);
    std::mt19937 rng(2);
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(rng);
    t.quantize_rows(x.data(), m, k, k, q.data(), d.data(), s.data());
    rows = {q.data(), d.data(), s.data(), sz.blocks, m};
  }
};

GemmFn gemm_for(const KernelTable& t, DType type) {
  return t.gemm_for(type);
}

// Splits the row groups evenly over `threads` threads (fixed chunks: results independent of it).
void run_gemm(GemmFn f, const std::uint8_t* w, std::size_t n, std::size_t k, const QuantizedRows& a,
              float* y, int threads) {
  const std::size_t groups = (n + 15) / 16;
  if (threads == 1) return f(w, n, k, a, y, n, 0, groups);
#pragma omp parallel num_threads(threads)
  {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    const auto nt = static_cast<std::size_t>(omp_get_num_threads());
    f(w, n, k, a, y, n, groups * t / nt, groups * (t + 1) / nt);
  }
}

// rows = 2 is decode with int8x2 activations (a second int8 pass for the residual).
void bm_gemv(benchmark::State& state, Isa isa, DType type, std::size_t k, std::size_t n,
             std::size_t rows, int threads) {
  const KernelTable& t = kernels_for(isa);
  const WeightSet ws(type, n, k, kDramBytes);
  const Acts a(t, rows, k);
  std::vector<float> y(rows * n);
  const GemmFn f = gemm_for(t, type);
  std::size_t i = 0;
  for (auto _ : state) {
    run_gemm(f, ws.at(i++), n, k, a.rows, y.data(), threads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(ws.bytes) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsRate);
  if (rows > 2) {  // a decode batch: weights still from DRAM, but every tile serves many rows
    const double ops = 2.0 * static_cast<double>(rows * n * k) * state.iterations();
    state.counters["Gops/s"] = benchmark::Counter(ops / 1e9, benchmark::Counter::kIsRate);
  }
}

// f32 / f16 / bf16 weights (row-major, small random values), `copies` matrices back to back.
struct FloatWeightSet {
  Bytes data;
  std::size_t stride = 0, copies = 0, bytes = 0;
  FloatWeightSet(DType t, std::size_t n, std::size_t k, std::size_t min_total) {
    const std::size_t elem = t == DType::F32 ? 4 : 2;
    bytes = n * k * elem;
    stride = (bytes + 63) / 64 * 64;
    copies = std::max<std::size_t>(1, (min_total + stride - 1) / stride);
    data = alloc64(stride * copies);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<std::uint8_t> one(bytes);
    for (std::size_t i = 0; i < n * k; ++i) {
      const float v = nd(rng);
      if (t == DType::F32) {
        std::memcpy(&one[4 * i], &v, 4);
      } else {
        const std::uint16_t h =
            t == DType::F16 ? qlm::detail::f32_to_f16(v) : qlm::detail::f32_to_bf16(v);
        std::memcpy(&one[2 * i], &h, 2);
      }
    }
    for (std::size_t c = 0; c < copies; ++c)
      std::memcpy(data.get() + c * stride, one.data(), bytes);
  }
  const std::uint8_t* at(std::size_t i) const { return data.get() + (i % copies) * stride; }
};

// Float weights against m float activation rows, rows split evenly over `threads` (multiples of
// 16, as the matmul driver cuts them). m = 1 streams from DRAM (GB/s), larger m from cache.
void bm_float(benchmark::State& state, Isa isa, DType type, std::size_t k, std::size_t n,
              std::size_t m, int threads) {
  const KernelTable& t = kernels_for(isa);
  const FloatWeightSet ws(type, n, k, m == 1 ? kDramBytes : 0);
  std::vector<float> x(m * k, 0.5f), y(m * n);
  const std::size_t groups = (n + 15) / 16;
  std::size_t i = 0;
  for (auto _ : state) {
    const std::uint8_t* w = ws.at(i++);
#pragma omp parallel num_threads(threads)
    {
      const auto th = static_cast<std::size_t>(omp_get_thread_num());
      const auto nt = static_cast<std::size_t>(omp_get_num_threads());
      const std::size_t r0 = std::min(n, groups * th / nt * 16);
      const std::size_t r1 = std::min(n, groups * (th + 1) / nt * 16);
      t.gemm_float(w, type, k, x.data(), m, k, y.data(), n, r0, r1);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(ws.bytes) * it / 1e9, benchmark::Counter::kIsRate);
  state.counters["Gflop/s"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k) * it / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void bm_gemm(benchmark::State& state, Isa isa, DType type, std::size_t k, std::size_t n,
             std::size_t m, int threads) {
  const KernelTable& t = kernels_for(isa);
  const WeightSet ws(type, n, k, 0);
  const Acts a(t, m, k);
  std::vector<float> y(m * n);
  const GemmFn f = gemm_for(t, type);
  for (auto _ : state) {
    run_gemm(f, ws.at(0), n, k, a.rows, y.data(), threads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double ops = 2.0 * static_cast<double>(m * n * k) * static_cast<double>(state.iterations());
  state.counters["Gops/s"] = benchmark::Counter(ops / 1e9, benchmark::Counter::kIsRate);
}

// Decode attention at Llama-3.2-1B's shape (8 KV heads of 64, 4 query heads each) over `context`
// cached positions: one call attends one layer's heads, rotating through 16 layers' caches (> L3),
// as kt.attn_block is driven block by block by ops::attend. GB/s counts the K and V bytes read.
void bm_attention(benchmark::State& state, Isa isa, KvType elem, std::size_t context, int threads) {
  constexpr std::size_t kLayers = 16, kKvHeads = 8, kGroup = 4, kHd = 64;
  const KernelTable& t = kernels_for(isa);
  const std::size_t esize = elem == KvType::F16 ? 2 : 4;
  const std::size_t head_bytes = context * kHd * esize, layer_bytes = 2 * kKvHeads * head_bytes;
  const Bytes kv = alloc64(kLayers * layer_bytes);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  qlm::bench::fill_normal({reinterpret_cast<std::byte*>(kv.get()), kLayers * layer_bytes}, elem,
                          rng);
  std::vector<float> q(kKvHeads * kGroup * kHd), out(q.size());
  for (float& x : q) x = nd(rng);
  const float scale = 0.125f;
  std::size_t layer = 0;
  for (auto _ : state) {
    const std::uint8_t* base = kv.get() + (layer++ % kLayers) * layer_bytes;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::size_t h = 0; h < kKvHeads; ++h) {
      const std::uint8_t* k = base + h * head_bytes;
      const std::uint8_t* v = base + (kKvHeads + h) * head_bytes;
      float m[kGroup], l[kGroup];
      std::fill_n(m, kGroup, -INFINITY);
      std::fill_n(l, kGroup, 0.0f);
      float* o = out.data() + h * kGroup * kHd;
      std::fill_n(o, kGroup * kHd, 0.0f);
      for (std::size_t t0 = 0; t0 < context; t0 += kAttnBlock) {
        const std::size_t n = std::min(kAttnBlock, context - t0);
        const std::size_t ahead = (t0 + kAttnBlock) * kHd * esize;  // as ops::attend asks
        const bool more = t0 + kAttnBlock < context;
        t.attn_block(q.data() + h * kGroup * kHd, kGroup, kHd, k + t0 * kHd * esize, 0,
                     v + t0 * kHd * esize, elem, n, scale, m, l, o, more ? k + ahead : nullptr,
                     more ? v + ahead : nullptr);
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(layer_bytes) * static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsRate);
}

// Read-only sum over 1 GiB: the bandwidth the GEMV kernels are compared against.
void bm_bandwidth(benchmark::State& state, int threads) {
  constexpr std::size_t kBytes = std::size_t{1} << 30;
  static const Bytes buf = [] {
    Bytes b = alloc64(kBytes);
    std::memset(b.get(), 1, kBytes);
    return b;
  }();
  for (auto _ : state) {
    std::uint64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const auto t = static_cast<std::size_t>(omp_get_thread_num());
      const auto nt = static_cast<std::size_t>(omp_get_num_threads());
      const std::size_t chunk = kBytes / nt / 128 * 128;
      total += qlm::tools::read_sum(buf.get() + t * chunk, chunk);
    }
    benchmark::DoNotOptimize(total);
  }
  const double bytes = static_cast<double>(kBytes) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsRate);
}

// The converter's scale search over 4096 blocks of normal weights (unit error weights, as without
// an importance file): what `qlm-convert --type T` spends per block.
void bm_scale_search(benchmark::State& state, Isa isa, DType type) {
  constexpr std::size_t kBlocks = 4096;
  const KernelTable& t = kernels_for(isa);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(kBlocks * 32), w(kBlocks * 32, 1.0f);
  for (float& v : x) v = normal(rng);
  for (auto _ : state) {
    float sum = 0.0f;
    for (std::size_t b = 0; b < kBlocks; ++b) sum += t.fit_scale(type, &x[b * 32], &w[b * 32]);
    benchmark::DoNotOptimize(sum);
  }
  state.counters["blocks/s"] = benchmark::Counter(static_cast<double>(kBlocks * state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

// Activation quantization of a 16-row decode batch (blocks/s, one thread): it runs before every
// matmul, on rows the previous step just wrote (so they are in cache, as here).
void bm_quantize(benchmark::State& state, Isa isa, std::size_t k) {
  constexpr std::size_t kRows = 16;
  const KernelTable& t = kernels_for(isa);
  const auto size = quantized_rows_size(kRows, k);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(kRows * k), d(size.d);
  std::vector<std::int8_t> q(size.q);
  std::vector<std::int32_t> s(size.s);
  for (float& v : x) v = normal(rng);
  for (auto _ : state) {
    t.quantize_rows(x.data(), kRows, k, k, q.data(), d.data(), s.data());
    benchmark::DoNotOptimize(q.data());
  }
  state.counters["blocks/s"] = benchmark::Counter(
      static_cast<double>(kRows * size.blocks * state.iterations()), benchmark::Counter::kIsRate);
}

// One row norm of width n: RMSNorm, or LayerNorm with bias (starcoder2).
void bm_norm(benchmark::State& state, Isa isa, bool layer, std::size_t n) {
  const KernelTable& t = kernels_for(isa);
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n), w(n), b(n), out(n);
  for (auto* v : {&x, &w, &b}) {
    for (float& e : *v) e = normal(rng);
  }
  for (auto _ : state) {
    if (layer) {
      t.layernorm(out.data(), x.data(), w.data(), b.data(), n, 1e-5f);
    } else {
      t.rmsnorm(out.data(), x.data(), w.data(), n, 1e-5f);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

struct Shape {
  std::size_t k, n;
};
constexpr Shape kDecode[] = {{576, 1536}, {2048, 5632}, {2048, 8192}, {4096, 14336}};

}  // namespace

int main(int argc, char** argv) {
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark(("bandwidth/read/threads:" + std::to_string(threads)).c_str(),
                                 bm_bandwidth, threads)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (Isa isa : supported_isas()) {
    const std::string in(to_string(isa));
    for (DType type : {DType::Q4, DType::Q4NL, DType::Q5, DType::Q8}) {
      const std::string tn(qlm::to_string(type));
      for (const Shape& s : kDecode) {
        for (std::size_t rows : {1, 2}) {
          if (rows == 2 && (type != DType::Q8 || isa == Isa::Scalar)) continue;
          for (int threads : {1, 2}) {
            if (isa == Isa::Scalar && threads == 2) continue;
            const std::string name = std::string(rows == 1 ? "gemv/" : "gemv-int8x2/") + in + "/" +
                                     tn + "/" + std::to_string(s.k) + "x" + std::to_string(s.n) +
                                     "/threads:" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), bm_gemv, isa, type, s.k, s.n, rows, threads)
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
      if (isa == Isa::Scalar) continue;  // seconds per call: not worth timing
      // Batched decode: 8 or 16 sequences' rows (32: 16 sequences of int8x2 activations) against
      // weights streamed from DRAM; 576x1536 is SmolLM2-135M's MLP, two L2 chunks per thread (1
      // or 2 rows: the GEMV of 1 or 2 sequences; 4 rows: one core's lane of 8 sequences),
      // 576x49152 its LM head.
      struct Batch {
        std::size_t m, k, n;
      };
      for (Batch b : {Batch{8, 2048, 5632},
                      {16, 2048, 5632},
                      {32, 2048, 5632},
                      {1, 576, 1536},
                      {2, 576, 1536},
                      {4, 576, 1536},
                      {8, 576, 1536},
                      {16, 576, 1536},
                      {32, 576, 1536},
                      {8, 576, 49152}}) {
        if (type != DType::Q4 && type != DType::Q8) continue;
        for (int threads : {1, 2}) {
          const std::string name = "gemm-dram/" + in + "/" + tn + "/m:" + std::to_string(b.m) +
                                   "/" + std::to_string(b.k) + "x" + std::to_string(b.n) +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), bm_gemv, isa, type, b.k, b.n, b.m, threads)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
      for (std::size_t m : {128, 512}) {
        for (int threads : {1, 2}) {
          const std::string name = "gemm/" + in + "/" + tn + "/m:" + std::to_string(m) +
                                   "/2048x5632/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), bm_gemm, isa, type, 2048, 5632, m, threads)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
  for (Isa isa : supported_isas()) {
    for (DType type : {DType::F16, DType::BF16, DType::F32}) {
      for (const Shape& s : kDecode) {
        for (std::size_t m : {1, 128}) {
          if (m > 1 && s.k != 2048) continue;
          for (int threads : {1, 2}) {
            if (isa == Isa::Scalar && (threads == 2 || m > 1)) continue;
            const std::string name = std::string(m == 1 ? "gemv/" : "gemm/") +
                                     std::string(to_string(isa)) + "/" +
                                     std::string(qlm::to_string(type)) +
                                     (m == 1 ? "/" : "/m:128/") + std::to_string(s.k) + "x" +
                                     std::to_string(s.n) + "/threads:" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), bm_float, isa, type, s.k, s.n, m, threads)
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
    }
  }
  for (Isa isa : supported_isas()) {
    for (KvType elem : {KvType::F32, KvType::F16}) {
      for (int threads : {1, 2}) {
        const std::string name = "attention/" + std::string(to_string(isa)) +
                                 (elem == KvType::F16 ? "/f16" : "/f32") +
                                 "/ctx:4096/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), bm_attention, isa, elem, 4096, threads)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  for (Isa isa : supported_isas()) {
    for (DType type : {DType::Q4, DType::Q4NL, DType::Q5, DType::Q8}) {
      const std::string name =
          "scale_search/" + std::string(to_string(isa)) + "/" + std::string(qlm::to_string(type));
      benchmark::RegisterBenchmark(name.c_str(), bm_scale_search, isa, type)
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (Isa isa : supported_isas()) {
    for (std::size_t k : {576, 1536}) {
      const std::string name =
          "quantize/" + std::string(to_string(isa)) + "/m:16/k:" + std::to_string(k);
      benchmark::RegisterBenchmark(name.c_str(), bm_quantize, isa, k)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (Isa isa : supported_isas()) {
    for (bool layer : {false, true}) {
      const std::string name =
          std::string(layer ? "layernorm/" : "rmsnorm/") + std::string(to_string(isa)) + "/n:3072";
      benchmark::RegisterBenchmark(name.c_str(), bm_norm, isa, layer, std::size_t{3072});
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
