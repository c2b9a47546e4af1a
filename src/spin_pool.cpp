// SpinPool: a pool whose parallel region ends when every task is done, not when every worker has
// arrived. Under OpenMP's fork-join, a worker the OS has descheduled (the machine is busy: a build,
// an editor) holds every region until it runs again; decode has hundreds of regions per token, so
// two threads on a busy 2-core machine ran ~100x slower than one. Here the caller and whichever
// workers are awake claim tasks from one counter, so a sleeping worker costs nothing unless it is
// in the middle of a task. Tasks are the caller's fixed chunks, so results never depend on which
// thread ran them.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "qlm/thread_pool.hpp"

namespace qlm {
namespace {

// Tells the core this is a spin-wait (frees resources for the other hyperthread, saves power).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class SpinPool final : public ThreadPool {
 public:
  explicit SpinPool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { work(); });
  }
  ~SpinPool() override {
    {
      std::lock_guard lock(sleep_mutex_);
      stop_.store(true, std::memory_order_relaxed);
      seq_.fetch_add(1, std::memory_order_seq_cst);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  SpinPool(const SpinPool&) = delete;
  SpinPool& operator=(const SpinPool&) = delete;

  int threads() const override { return threads_; }

  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& task) override {
    // One region at a time; a second caller (another session on this pool) runs its tasks itself.
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (threads_ == 1 || n <= 1 || n > kMaxTasks || !lock.owns_lock()) {
      for (std::size_t i = 0; i < n; ++i) task(i);
      return;
    }
    task_ = &task;
    done_.store(0, std::memory_order_relaxed);
    next_.store(static_cast<std::uint64_t>(n) << 32, std::memory_order_release);  // publishes
    seq_.fetch_add(1, std::memory_order_seq_cst);
    // A sleeper registers (seq_cst) before it re-checks seq_, so either it sees the new region or
    // this sees it and wakes it; taking the mutex orders the notify after its wait began.
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard wake_lock(sleep_mutex_); }
      wake_.notify_all();
    }
    run_tasks();
    while (done_.load(std::memory_order_acquire) < n) std::this_thread::yield();
  }

 private:
  static constexpr std::size_t kMaxTasks = 0xffffffffu;

  // Claims and runs tasks of the current region until none are left. next_ holds (n << 32) |
  // index; a claim is a CAS on it, so it always takes a task of the region current at that moment,
  // whose task_ stays valid until the task is counted done (the caller waits for that).
  void run_tasks() {
    std::uint64_t v = next_.load(std::memory_order_acquire);
    while ((v & 0xffffffffu) < (v >> 32)) {
      if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        continue;
      }
      (*task_)(static_cast<std::size_t>(v & 0xffffffffu));
      done_.fetch_add(1, std::memory_order_release);
      v = next_.load(std::memory_order_acquire);
    }
  }

  // Spins briefly for the next region (decode starts one every few microseconds), then sleeps.
  void work() {
    // Not seq_'s value at thread start: a region, or the destructor, may have come first.
    std::uint64_t seen = 0;
    while (true) {
      std::uint64_t s = seen;
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(500);
      for (int spins = 0; s == seen; ++spins) {
        cpu_relax();
        s = seq_.load(std::memory_order_acquire);
        if (s != seen || (spins % 256 == 0 && std::chrono::steady_clock::now() > until)) break;
      }
      if (s == seen) {
        std::unique_lock lock(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, [&] { return seq_.load(std::memory_order_seq_cst) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        s = seq_.load(std::memory_order_acquire);
      }
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = s;
      run_tasks();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;        // one region at a time
  std::mutex sleep_mutex_;  // with wake_: idle workers sleep here
  std::condition_variable wake_;
  std::atomic<std::uint64_t> seq_{0};   // region count: wakes workers
  std::atomic<std::uint64_t> next_{0};  // (tasks << 32) | next task index
  std::atomic<std::size_t> done_{0};    // tasks of the current region finished
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(std::size_t)>* task_ = nullptr;
};

}  // namespace

std::shared_ptr<ThreadPool> make_spin_pool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_shared<SpinPool>(threads);
}

}  // namespace qlm
