// Metrics in Prometheus' text exposition format (version 0.0.4).
#include "metrics.hpp"

#include <fmt/format.h>

namespace qlm::server {

void Histogram::observe(double seconds) {
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) ++counts[i];
  }
  ++count;
  sum += seconds;
}

void Metrics::request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::generation(const RequestStats& stats, bool cancelled) {
  std::lock_guard lock(mutex_);
  ++generations_;
  if (cancelled) ++cancelled_;
  prompt_tokens_ += stats.prompt_tokens;
  cached_tokens_ += stats.cached_tokens;
  generated_tokens_ += stats.generated_tokens;
  if (stats.time_to_first_token > 0.0) ttft_.observe(stats.time_to_first_token);
  queue_.observe(stats.queue_seconds);
}

void Metrics::inter_token(double seconds) {
  std::lock_guard lock(mutex_);
  inter_token_.observe(seconds);
}

namespace {

void counter(std::string& out, const char* name, const char* help, double value) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, value);
}

void gauge(std::string& out, const char* name, const char* help, double value) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help, value);
}

void histogram(std::string& out, const char* name, const char* help, const Histogram& h) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} histogram\n", name, help);
  for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, Histogram::kBounds[i], h.counts[i]);
  }
  out += fmt::format("{0}_bucket{{le=\"+Inf\"}} {1}\n{0}_sum {2}\n{0}_count {1}\n", name, h.count,
                     h.sum);
}

}  // namespace

std::string Metrics::render(const SchedulerStats& load) const {
  std::lock_guard lock(mutex_);
  std::string out;
  out +=
      "# HELP qlm_http_requests_total HTTP requests answered, by endpoint and status.\n"
      "# TYPE qlm_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += fmt::format("qlm_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, n);
  }
  counter(out, "qlm_generations_total", "Generation requests ended.",
          static_cast<double>(generations_));
  counter(out, "qlm_generations_cancelled_total",
          "Generation requests ended early (client gone, time limit, shutdown).",
          static_cast<double>(cancelled_));
  counter(out, "qlm_prompt_tokens_total", "Prompt tokens of ended requests.",
          static_cast<double>(prompt_tokens_));
  counter(out, "qlm_prompt_tokens_cached_total",
          "Prompt tokens taken from the prefix cache instead of evaluated.",
          static_cast<double>(cached_tokens_));
  counter(out, "qlm_generated_tokens_total", "Tokens generated, over all choices.",
          static_cast<double>(generated_tokens_));
  gauge(out, "qlm_prefix_cache_hit_ratio", "Cached prompt tokens over prompt tokens.",
        prompt_tokens_ ? static_cast<double>(cached_tokens_) / static_cast<double>(prompt_tokens_)
                       : 0.0);
  histogram(out, "qlm_time_to_first_token_seconds", "Request received to its first token.", ttft_);
  histogram(out, "qlm_inter_token_latency_seconds", "Time between tokens of one choice.",
            inter_token_);
  histogram(out, "qlm_queue_seconds", "Request received to admitted by the scheduler.", queue_);
  gauge(out, "qlm_requests_waiting", "Requests queued for room.",
        static_cast<double>(load.waiting));
  gauge(out, "qlm_requests_running", "Requests being served.", static_cast<double>(load.running));
  gauge(out, "qlm_kv_pages_total", "Pages of the KV pool.", load.pool.pages);
  gauge(out, "qlm_kv_pages_used", "KV pages referenced by a running sequence.", load.pool.used);
  gauge(out, "qlm_kv_pages_cached", "KV pages kept only for prefix reuse.", load.pool.cached);
  gauge(out, "qlm_kv_page_bytes", "Bytes of one KV page.",
        static_cast<double>(load.pool.page_bytes));
  return out;
}

}  // namespace qlm::server
