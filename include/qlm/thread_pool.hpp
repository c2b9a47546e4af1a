// ThreadPool: how qlm runs parallel work. The application owns the threads; qlm only hands a pool
// independent tasks. Results never depend on the pool: work is cut into fixed chunks first.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace qlm {

/// Runs batches of independent tasks. Implement it to plug qlm into an application's own threads.
class ThreadPool {
 public:
  virtual ~ThreadPool() = default;
  /// Threads that may run tasks concurrently (>= 1).
  virtual int threads() const = 0;
  /// Calls task(i) for every i in [0, n), possibly concurrently, and returns when all are done.
  /// Tasks never throw.
  virtual void parallel_for(std::size_t n, const std::function<void(std::size_t)>& task) = 0;
};

/// An OpenMP-backed pool of `threads` threads (0 = all hardware threads). It never changes OMP_*
/// settings; it passes its thread count to each parallel region. Its join waits for every thread,
/// so on a busy machine a descheduled thread stalls each region (docs/architecture.md, Threads).
std::shared_ptr<ThreadPool> make_openmp_pool(int threads = 0);

/// A pool of `threads` - 1 own worker threads plus the caller (0 = all hardware threads). Workers
/// spin briefly between regions, then sleep; a region ends when its tasks are done, so a worker
/// the OS has descheduled does not hold it up (OpenMP's barrier waits for every thread).
std::shared_ptr<ThreadPool> make_spin_pool(int threads = 0);

/// Runs every task on the calling thread.
std::shared_ptr<ThreadPool> make_serial_pool();

}  // namespace qlm
