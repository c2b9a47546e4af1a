// The default thread pools. OpenMP stays in this file (and kernels' benchmarks), never in headers.
#include "qlm/thread_pool.hpp"

#include <omp.h>

#include <thread>

namespace qlm {
namespace {

class OpenMpPool final : public ThreadPool {
 public:
  explicit OpenMpPool(int threads) : threads_(threads) {}
  int threads() const override { return threads_; }
  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& task) override {
    if (threads_ == 1 || n <= 1) {
      for (std::size_t i = 0; i < n; ++i) task(i);
      return;
    }
    const auto count = static_cast<long long>(n);
#pragma omp parallel for num_threads(threads_) schedule(static, 1)
    for (long long i = 0; i < count; ++i) task(static_cast<std::size_t>(i));
  }

 private:
  int threads_;
};

class SerialPool final : public ThreadPool {
 public:
  int threads() const override { return 1; }
  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& task) override {
    for (std::size_t i = 0; i < n; ++i) task(i);
  }
};

}  // namespace

std::shared_ptr<ThreadPool> make_openmp_pool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_shared<OpenMpPool>(threads);
}

std::shared_ptr<ThreadPool> make_serial_pool() {
  return std::make_shared<SerialPool>();
}

}  // namespace qlm
