// The thread pools: every task runs exactly once per region, regions never overlap or leak into
// each other, and a second caller is served (fast_path_test checks a model's bits on each pool).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "qlm/thread_pool.hpp"

namespace {

using qlm::ThreadPool;

std::vector<std::shared_ptr<ThreadPool>> all_pools() {
#if defined(__SANITIZE_THREAD__)
  // libgomp is not instrumented: TSan would report its barriers as races (the TSan pass checks
  // the pools qlm itself implements).
  return {qlm::make_serial_pool(), qlm::make_spin_pool(1), qlm::make_spin_pool(2),
          qlm::make_spin_pool(3)};
#else
  return {qlm::make_serial_pool(), qlm::make_openmp_pool(2), qlm::make_openmp_pool(3),
          qlm::make_spin_pool(1),  qlm::make_spin_pool(2),   qlm::make_spin_pool(3)};
#endif
}

}  // namespace

TEST_CASE("every pool runs each task exactly once, region after region", "[pool]") {
  for (const auto& pool : all_pools()) {
    INFO("threads " << pool->threads());
    std::vector<std::atomic<int>> hits(97);
    // Many short regions back to back: a worker that wakes late must not run a task of an old
    // region, nor miss one of the current region.
    for (int region = 0; region < 3000; ++region) {
      const std::size_t n = 1 + static_cast<std::size_t>(region) % hits.size();
      pool->parallel_for(n,
                         [&](std::size_t i) { hits[i].fetch_add(1, std::memory_order_relaxed); });
      for (std::size_t i = 0; i < hits.size(); ++i) {
        const int want = i < n ? 1 : 0;
        if (hits[i].load() != want)
          FAIL("region " << region << " task " << i << " ran " << hits[i]);
        hits[i].store(0);
      }
    }
    int calls = 0;
    pool->parallel_for(0, [&](std::size_t) { ++calls; });
    CHECK(calls == 0);
  }
}

TEST_CASE("a pool serves two callers at once", "[pool]") {
  for (const auto& pool : all_pools()) {
    INFO("threads " << pool->threads());
    std::atomic<long> sum{0};
    const auto caller = [&] {
      for (int r = 0; r < 2000; ++r) {
        pool->parallel_for(16, [&](std::size_t i) { sum.fetch_add(static_cast<long>(i) + 1); });
      }
    };
    std::thread other(caller);
    caller();
    other.join();
    CHECK(sum.load() == 2L * 2000 * (16 * 17 / 2));
  }
}

TEST_CASE("a spin pool can be destroyed at any moment", "[pool]") {
  // Before its workers have started, right after a region, or after they went to sleep.
  for (int i = 0; i < 600; ++i) {
    auto pool = qlm::make_spin_pool(2 + i % 2);
    for (int r = 0; r < i % 3; ++r) pool->parallel_for(8, [](std::size_t) {});
    if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  SUCCEED();
}
