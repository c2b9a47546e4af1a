// The server's counters and latency histograms, rendered in Prometheus' text format for
// GET /metrics. Updated from the I/O and scheduler threads under one mutex (a few updates per
// token: nothing next to a forward pass).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <qlm/scheduler.hpp>

namespace qlm::server {

/// Cumulative histogram of seconds over fixed buckets.
struct Histogram {
  static constexpr std::array<double, 14> kBounds = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1,  0.15,
                                                     0.25,  0.5,  1.0,   2.5,  5.0,   10.0, 30.0};
  std::array<std::uint64_t, kBounds.size()> counts{};
  std::uint64_t count = 0;
  double sum = 0.0;
  void observe(double seconds);
};

/// Everything /metrics reports besides the scheduler's own load.
class Metrics {
 public:
  /// One finished HTTP request on `endpoint` with `status`.
  void request(const std::string& endpoint, int status);
  /// One finished generation: its scheduler stats and whether it was cancelled.
  void generation(const RequestStats& stats, bool cancelled);
  /// The time since the previous token of one choice.
  void inter_token(double seconds);
  /// Prometheus text, with the scheduler's queue, running requests and pool.
  std::string render(const SchedulerStats& load) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::uint64_t generations_ = 0, cancelled_ = 0;
  std::uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, inter_token_, queue_;
};

}  // namespace qlm::server
