// plan_mixed: sensitivity = how much the matrix's output noise-to-signal ratio falls from q4 to q8,
// with noise and signal weighted by the importance of each input column (the expected squared
// output error of the product, when the calibration activations are given). Greedy by sensitivity
// per extra byte: a knapsack heuristic that is optimal when every matrix costs the same.
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
  double gain() const { return (nsr4 - nsr8) / static_cast<double>(bytes8 - bytes4); }
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

double nsr(DType t, std::span<const float> x, const MixedCandidate& c, quant::ScaleMethod method,
           double sig) {
  const quant::TileGeometry geo(t, c.rows, c.k);
  std::vector<std::uint8_t> q(geo.total_bytes());
  quant::quantize_matrix(t, x, c.rows, c.k, q, {.method = method, .importance = c.importance});
  const double err = quant::weighted_error(t, x, q, c.rows, c.k, c.importance);
  return sig > 0.0 ? err / sig : 0.0;
}

Scored score(const MixedCandidate& c, DType low, quant::ScaleMethod method) {
  const std::vector<float> x = c.load();
  const double sig = signal(x, c.rows, c.k, c.importance);
  const std::vector<std::uint64_t> shape{c.rows, c.k};
  return {&c, nsr(low, x, c, method, sig), nsr(DType::Q8, x, c, method, sig),
          *tensor_bytes(low, shape), *tensor_bytes(DType::Q8, shape)};
}

}  // namespace

MixedPlan plan_mixed(std::span<const MixedCandidate> candidates, std::uint64_t fixed_bytes,
                     std::uint64_t fixed_weights, double max_bits, DType low,
                     quant::ScaleMethod method) {
  if (low != DType::Q4 && low != DType::Q4NL) {
    fail(ErrorCode::InvalidArgument, "mixed recipe: the base type must be q4 or q4nl, not {}",
         to_string(low));
  }
  std::vector<Scored> scored;
  std::uint64_t bytes = fixed_bytes, weights = fixed_weights;
  for (const auto& c : candidates) {
    scored.push_back(score(c, low, method));
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
    plan.reasons.push_back(fmt::format(
        "{:<4} {}: output noise/signal {:.2e} at {}, {:.2e} at q8; {:.3g} per extra KiB{}",
        to_string(promote ? DType::Q8 : low), s.c->name, s.nsr4, to_string(low), s.nsr8,
        s.gain() * 1024.0, promote ? "" : " (over budget)"));
  }
  plan.reasons.push_back(
      fmt::format("{:.3f} bits per weight of a {:.2f} budget",
                  8.0 * static_cast<double>(bytes) / static_cast<double>(weights), max_bits));
  return plan;
}

}  // namespace qlm::detail
