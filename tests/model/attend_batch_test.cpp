// ops::attend_batch: a batch of attention calls over scattered KV pages gives each call the bits of
// ops::attend alone, however many calls share a task and whatever the pool.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernel_table.hpp"
#include "ops/attention.hpp"
#include "qlm/detail/half.hpp"
#include "qlm/thread_pool.hpp"

namespace {

using qlm::KvType;

struct Pages {
  std::uint32_t hd, pages;
  KvType type;
  std::vector<std::byte> key, value;
  std::vector<std::uint32_t> table;  // one sequence's blocks, scattered over the pool
  std::size_t block_bytes() const {
    return qlm::kernels::kAttnBlock * hd * (type == KvType::F16 ? 2 : 4);
  }
  Pages(std::uint32_t head_dim, std::uint32_t n, KvType t, std::mt19937& rng)
      : hd(head_dim), pages(n), type(t) {
    key.resize(block_bytes() * pages);
    value.resize(block_bytes() * pages);
    std::normal_distribution<float> nd;
    for (auto* buf : {&key, &value}) {
      for (std::size_t at = 0; at < buf->size();) {
        const float x = nd(rng);
        if (type == KvType::F16) {
          const std::uint16_t h = qlm::detail::f32_to_f16(x);
          std::memcpy(buf->data() + at, &h, 2);
          at += 2;
        } else {
          std::memcpy(buf->data() + at, &x, 4);
          at += 4;
        }
      }
    }
    table.resize(pages);
    std::iota(table.begin(), table.end(), 0u);
    std::shuffle(table.begin(), table.end(), rng);
  }
  qlm::ops::KvPages view() const {
    return {key.data(), value.data(), block_bytes(), table.data(), type};
  }
};

}  // namespace

TEST_CASE("attend_batch gives every call attend's bits, over scattered pages, on any pool") {
  std::mt19937 rng(29);
  for (const qlm::kernels::Isa isa : qlm::kernels::supported_isas()) {
    const qlm::kernels::KernelTable& kt = qlm::kernels::kernels_for(isa);
    for (const KvType type : {KvType::F32, KvType::F16}) {
      for (const std::uint32_t hd : {64u, 72u}) {
        constexpr std::uint32_t kGroup = 3;
        const Pages kv(hd, 8, type, rng);  // 256 positions
        // Calls at awkward depths and windows: one key, a block boundary, a window's start.
        struct Call {
          std::uint32_t first, last;
        };
        const std::vector<Call> calls = {{0, 0},  {0, 30},   {0, 31},   {0, 32},  {0, 100},
                                         {5, 63}, {40, 255}, {33, 200}, {0, 255}, {200, 201}};
        std::vector<float> q(calls.size() * kGroup * hd);
        std::normal_distribution<float> nd;
        for (float& x : q) x = nd(rng);
        std::vector<float> alone(q.size());
        const auto item = [&](std::vector<float>& out, std::size_t i) {
          return qlm::ops::AttentionItem{.shape = {hd, kGroup, calls[i].first, calls[i].last, 0.0f},
                                         .q = &q[i * kGroup * hd],
                                         .kv = kv.view(),
                                         .out = &out[i * kGroup * hd]};
        };
        for (std::size_t i = 0; i < calls.size(); ++i) {
          const auto it = item(alone, i);
          qlm::ops::attend(kt, it.shape, it.q, it.kv, it.out);
        }
        for (const auto& pool : {qlm::make_serial_pool(), qlm::make_spin_pool(2)}) {
          for (std::size_t n = 1; n <= calls.size(); ++n) {
            std::vector<float> batch(q.size(), -1.0f);
            qlm::ops::attend_batch(kt, *pool, n, [&](std::size_t i) { return item(batch, i); });
            CAPTURE(qlm::kernels::to_string(isa), hd, n, pool->threads(), type == KvType::F16);
            REQUIRE(std::memcmp(batch.data(), alone.data(), n * kGroup * hd * sizeof(float)) == 0);
            REQUIRE(std::all_of(batch.begin() + static_cast<std::ptrdiff_t>(n * kGroup * hd),
                                batch.end(), [](float x) { return x == -1.0f; }));
          }
        }
      }
    }
  }
}
