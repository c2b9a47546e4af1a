// plan_mixed: sensitivity = how much the matrix's output noise-to-signal ratio falls from q4 to q8,
// with noise and signal weighted by the input's second moment (H, or the importance of each input
// column: the expected squared output error of the product, when calibration statistics are
// given); or, where measured, the KL divergence with only this matrix at 4 bits (q8's is taken as
// 0: it is two orders of magnitude smaller). Greedy by sensitivity per extra byte: a knapsack
// heuristic that is optimal when every matrix costs the same.
#include "convert/mixed_recipe.hpp"

#include <fmt/format.h>
#include <algorithm>

#include "util/fail.hpp"

namespace qlm::detail {

using detail::fail;

namespace {

struct Scored {
  const MixedCandidate* c;
  double nsr4, nsr8;  // output noise-to-signal ratios at the 4-bit type and at q8
  std::uint64_t bytes4, bytes8;
  double measured = -1.0;  // KL with only this matrix at the 4-bit type; < 0: not measured
  double gain() const {
    return (measured >= 0.0 ? measured : nsr4 - nsr8) / static_cast<double>(bytes8 - bytes4);
  }
};

double signal(std::span<const float> x, std::uint64_t rows, std::uint64_t k,
              std::span<const float> imp) {
  double s = 0.0;
  for (std::uint64_t r = 0; r < rows; ++r) {
    for (std::uint64_t c = 0; c < k; ++c) {
      const double v = x[r * k + c];
      s += (imp.empty() ? 1.0 : imp[c]) * v * v;
    }
  }
  return s;
}

// With H, signal and error are the quadratic forms w^T H w of the output (the quantizer then
// minimizes that same error); without, the importance-weighted diagonal.
double nsr(DType t, std::span<const float> x, const MixedCandidate& c, quant::ScaleMethod method,
           std::span<const float> h, double sig) {
  const quant::TileGeometry geo(t, c.rows, c.k);
  std::vector<std::uint8_t> q(geo.total_bytes());
  quant::quantize_matrix(t, x, c.rows, c.k, q,
                         {.method = method, .importance = c.importance, .hessian = h});
  const double err = h.empty() ? quant::weighted_error(t, x, q, c.rows, c.k, c.importance)
                               : quant::hessian_error(t, x, q, c.rows, c.k, h);
  return sig > 0.0 ? err / sig : 0.0;
}

Scored score(const MixedCandidate& c, DType low, quant::ScaleMethod method) {
  const std::vector<float> x = c.load();
  const std::vector<float> h = c.hessian();
  double sig = 0.0;
  if (h.empty()) {
    sig = signal(x, c.rows, c.k, c.importance);
  } else {
    for (std::uint64_t r = 0; r < c.rows; ++r) {
      for (std::uint64_t i = 0; i < c.k; ++i) {
        for (std::uint64_t j = 0; j < c.k; ++j) {
          sig += static_cast<double>(x[r * c.k + i]) * h[i * c.k + j] * x[r * c.k + j];
        }
      }
    }
  }
  const std::vector<std::uint64_t> shape{c.rows, c.k};
  return {&c, nsr(low, x, c, method, h, sig), nsr(DType::Q8, x, c, method, h, sig),
          *tensor_bytes(low, shape), *tensor_bytes(DType::Q8, shape)};
}

}  // namespace

MixedPlan plan_mixed(std::span<const MixedCandidate> candidates, std::uint64_t fixed_bytes,
                     std::uint64_t fixed_weights, double max_bits, DType low,
                     quant::ScaleMethod method, const std::map<std::string, double>& measured) {
  if (low != DType::Q4 && low != DType::Q4NL) {
    fail(ErrorCode::InvalidArgument, "mixed recipe: the base type must be q4 or q4nl, not {}",
         to_string(low));
  }
  std::vector<Scored> scored;
  std::uint64_t bytes = fixed_bytes, weights = fixed_weights;
  for (const auto& c : candidates) {
    scored.push_back(score(c, low, method));
    if (auto it = measured.find(c.name); it != measured.end()) scored.back().measured = it->second;
    bytes += scored.back().bytes4;
    weights += c.rows * c.k;
  }
  const double budget_bytes = max_bits * static_cast<double>(weights) / 8.0;
  if (static_cast<double>(bytes) > budget_bytes) {
    fail(ErrorCode::InvalidArgument,
         "mixed recipe: a budget of {:.3f} bits per weight is below all-{}'s {:.3f}", max_bits,
         to_string(low), 8.0 * static_cast<double>(bytes) / static_cast<double>(weights));
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const Scored& a, const Scored& b) { return a.gain() > b.gain(); });
  MixedPlan plan;
  for (const Scored& s : scored) {
    const std::uint64_t extra = s.bytes8 - s.bytes4;
    const bool promote = static_cast<double>(bytes + extra) <= budget_bytes;
    if (promote) bytes += extra;
    plan.types[s.c->name] = promote ? DType::Q8 : low;
    const std::string kl = s.measured >= 0.0 ? fmt::format("; KL {:.2e} when only it is {}",
                                                           s.measured, to_string(low))
                                             : "";
    plan.reasons.push_back(fmt::format(
        "{:<4} {}: output noise/signal {:.2e} at {}, {:.2e} at q8{}; {:.3g} per extra KiB{}",
        to_string(promote ? DType::Q8 : low), s.c->name, s.nsr4, to_string(low), s.nsr8, kl,
        s.gain() * 1024.0, promote ? "" : " (over budget)"));
  }
  plan.reasons.push_back(
      fmt::format("{:.3f} bits per weight of a {:.2f} budget",
                  8.0 * static_cast<double>(bytes) / static_cast<double>(weights), max_bits));
  return plan;
}

}  // namespace qlm::detail
