// Batched decode attention over the paged KV cache, as FastForward runs it: S sequences decode one
// token each, at SmolLM2-135M's shape (30 layers, 3 KV heads of 64, 3 query heads each) or
// TinyLlama-1.1B's (22 layers, 4 KV heads of 64, 8 query heads each), one parallel region per layer
// over (sequence, KV head) tasks, each an ops::attend over the sequence's pages. The pages of
// sequences that grow together interleave in the pool (page id = block * S + sequence), as the pool
// hands them out, so a sequence's next block is never the next page in memory. GB/s counts the keys
// and values read. attention-block times the kernel alone on one L1-resident block, per query-head
// group size: the batch cases above wait on memory, which hides what the arithmetic costs.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernel_table.hpp"
#include "kv_fill.hpp"
#include "ops/attention.hpp"
#include "qlm/thread_pool.hpp"

namespace {

using qlm::KvType;
using qlm::bench::fill_normal;
using namespace qlm::kernels;

/// A model's attention shape.
struct Shape {
  const char* name;
  std::uint32_t layers, kv_heads, group, hd;
};
constexpr Shape kShapes[] = {{"smollm2", 30, 3, 3, 64}, {"tinyllama", 22, 4, 8, 64}};

void bm_attention_batch(benchmark::State& state, Isa isa, KvType type, Shape shape,
                        std::uint32_t seqs, std::uint32_t depth, int threads) {
  const std::uint32_t layers = shape.layers, kv_heads = shape.kv_heads, group = shape.group,
                      hd = shape.hd;
  const KernelTable& kt = kernels_for(isa);
  const auto pool = qlm::make_spin_pool(threads);
  const std::size_t esize = type == KvType::F16 ? 2 : 4;
  const std::size_t block_bytes = kAttnBlock * hd * esize;
  const std::uint32_t blocks = (depth + kAttnBlock - 1) / kAttnBlock, pages = blocks * seqs;
  // One region per (layer, head, K|V), each `pages` blocks long: the pool's layout.
  const std::size_t region = pages * block_bytes, regions = 2ull * layers * kv_heads;
  std::vector<std::byte> kv(region * regions);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  fill_normal(kv, type, rng);
  std::vector<std::uint32_t> table(std::size_t{seqs} * blocks);  // per sequence, its pages
  for (std::uint32_t s = 0; s < seqs; ++s) {
    for (std::uint32_t b = 0; b < blocks; ++b) table[s * blocks + b] = b * seqs + s;
  }
  const std::size_t qd = kv_heads * group * hd;
  std::vector<float> q(seqs * qd), out(q.size());
  for (float& x : q) x = nd(rng);
  const auto region_of = [&](std::uint32_t l, std::uint32_t h, bool value) {
    return kv.data() + ((value ? layers * kv_heads : 0) + l * kv_heads + h) * region;
  };
  for (auto _ : state) {
    for (std::uint32_t l = 0; l < layers; ++l) {
      qlm::ops::attend_batch(kt, *pool, seqs * kv_heads, [&](std::size_t task) {
        const auto s = static_cast<std::uint32_t>(task / kv_heads);
        const auto h = static_cast<std::uint32_t>(task % kv_heads);
        const std::size_t off = s * qd + h * group * hd;
        return qlm::ops::AttentionItem{.shape = {hd, group, 0, depth - 1, 0.0f},
                                       .q = &q[off],
                                       .kv = {.key = region_of(l, h, false),
                                              .value = region_of(l, h, true),
                                              .page_stride = block_bytes,
                                              .pages = &table[s * blocks],
                                              .type = type},
                                       .out = &out[off]};
      });
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double bytes = 2.0 * layers * kv_heads * seqs * depth * hd * esize;
  state.counters["GB/s"] = benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

// One kt.attn_block call after another on the same 32-key block of a 64-wide head, for `group`
// query heads: the arithmetic of a block (scores, softmax, values) with every load an L1 hit.
void bm_attention_block(benchmark::State& state, Isa isa, KvType type, std::uint32_t group) {
  constexpr std::size_t kHd = 64;
  const KernelTable& kt = kernels_for(isa);
  const std::size_t esize = type == KvType::F16 ? 2 : 4;
  std::vector<std::byte> k(kAttnBlock * kHd * esize), v(k.size());
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  fill_normal(k, type, rng);
  fill_normal(v, type, rng);
  std::vector<float> q(group * kHd), acc(q.size()), m(group, -INFINITY), l(group, 0.0f);
  for (float& x : q) x = 0.1f * nd(rng);
  for (auto _ : state) {
    kt.attn_block(q.data(), group, kHd, k.data(), 0, v.data(), type, kAttnBlock, 0.125f, m.data(),
                  l.data(), acc.data(), nullptr, nullptr);
    benchmark::DoNotOptimize(acc.data());
  }
  state.counters["blocks/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  for (Isa isa : supported_isas()) {
    for (KvType type : {KvType::F32, KvType::F16}) {
      for (std::uint32_t group : {1u, 2u, 3u, 4u, 8u}) {
        const std::string name = "attention-block/" + std::string(to_string(isa)) + "/" +
                                 (type == KvType::F16 ? "f16" : "f32") +
                                 "/g:" + std::to_string(group);
        benchmark::RegisterBenchmark(name.c_str(), bm_attention_block, isa, type, group)
            ->Unit(benchmark::kNanosecond);
      }
    }
  }
  for (Isa isa : supported_isas()) {
    if (isa == Isa::Scalar) continue;
    for (const Shape& shape : kShapes) {
      for (KvType type : {KvType::F32, KvType::F16}) {
        for (std::uint32_t depth : {64u, 512u}) {
          for (int threads : {1, 2}) {
            const std::string name = "attention-batch/" + std::string(to_string(isa)) + "/" +
                                     (type == KvType::F16 ? "f16" : "f32") + "/" + shape.name +
                                     "/seqs:16/depth:" + std::to_string(depth) +
                                     "/threads:" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), bm_attention_batch, isa, type, shape, 16u,
                                         depth, threads)
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
