// Row-wise work over the pool. Between the matmuls, a batch's rows go through independent
// elementwise steps (norms, RoPE, KV stores, activation quantization); each row runs the same code
// on whichever thread takes it, so splitting the rows changes no result. A few rows stay on the
// calling thread, where a parallel region would cost more than it saves (single-sequence decode).
#pragma once

#include <algorithm>
#include <cstddef>

#include "qlm/thread_pool.hpp"

namespace qlm::ops {

/// Batches of fewer rows run on the calling thread.
inline constexpr std::size_t kParallelRows = 4;

/// Calls f(i0, i1) on row ranges that cover [0, m) once, on `pool` when m >= kParallelRows.
template <class F>
void for_row_ranges(ThreadPool* pool, std::size_t m, const F& f) {
  const int threads = pool == nullptr ? 1 : pool->threads();
  if (m < kParallelRows || threads <= 1) {
    f(std::size_t{0}, m);
    return;
  }
  const std::size_t tasks = std::min<std::size_t>(m, 4 * static_cast<std::size_t>(threads));
  pool->parallel_for(tasks, [&](std::size_t t) { f(t * m / tasks, (t + 1) * m / tasks); });
}

}  // namespace qlm::ops
