// Read-only memory bandwidth probe, shared by qlm-bench and the kernel benchmarks so that both
// report speeds against the same bound: decode streams weights (and the KV cache) once per token,
// so the machine's read bandwidth divided by the bytes read per token is what a decoder can reach.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qlm::tools {

#if defined(__x86_64__)
// 256-bit loads into four independent accumulators keep the loop bound by memory, not by load
// issue (64-bit scalar loads read ~15% less than the vector kernels stream), and each line is
// prefetched 2 KiB ahead as the GEMV kernels do: the hardware prefetcher alone restarts at every
// 4 KiB page and reads ~15% less. A weaker probe would flatter every "share of bound".
__attribute__((target("avx2"))) inline std::uint64_t read_sum_avx2(const std::uint8_t* p,
                                                                   std::size_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i + 128 <= bytes; i += 128) {
    _mm_prefetch(reinterpret_cast<const char*>(p + i + 2048), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + i + 2048 + 64), _MM_HINT_T0);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i r = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  return static_cast<std::uint64_t>(_mm256_extract_epi64(r, 0) + _mm256_extract_epi64(r, 1) +
                                    _mm256_extract_epi64(r, 2) + _mm256_extract_epi64(r, 3));
}
#endif

/// Sum of the 64-bit words of p[0, bytes) (p 32-byte aligned, bytes a multiple of 128).
inline std::uint64_t read_sum(const std::uint8_t* p, std::size_t bytes) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return read_sum_avx2(p, bytes);
#endif
  std::uint64_t acc[8] = {};
  for (std::size_t i = 0; i + 64 <= bytes; i += 64) {
    for (std::size_t j = 0; j < 8; ++j) {
      std::uint64_t v;
      std::memcpy(&v, p + i + 8 * j, 8);
      acc[j] += v;
    }
  }
  std::uint64_t total = 0;
  for (std::uint64_t v : acc) total += v;
  return total;
}

/// Best of `reps` timed passes of `threads` threads summing disjoint slices of a `bytes` buffer
/// (far larger than the caches), in GB/s; 0 if the buffer cannot be had.
inline double read_bandwidth_gbs(std::size_t bytes, int threads, int reps) {
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 0.0;
  auto* buf = static_cast<std::uint8_t*>(m);
  std::memset(buf, 1, bytes);
  const auto nt = static_cast<std::size_t>(std::max(1, threads));
  const std::size_t chunk = bytes / nt / 128 * 128;
  double best = 0.0;
  std::vector<std::uint64_t> sums(nt);
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < nt; ++t) {
      pool.emplace_back([&, t] { sums[t] = read_sum(buf + t * chunk, chunk); });
    }
    sums[0] = read_sum(buf, chunk);
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(chunk * nt) / s / 1e9);
  }
  ::munmap(m, bytes);
  return sums[0] == 0 ? 0.0 : best;  // sums[0] is never 0: keeps the loads observable
}

}  // namespace qlm::tools
