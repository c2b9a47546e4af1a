// plan_mixed: each matrix's error at each type is its output noise-to-signal ratio, with noise and
// signal weighted by the input's second moment (H, or the importance of each input column: the
// expected squared output error of the product, when calibration statistics are given); or, where
// measured, the KL divergence with only this matrix at that type. Promotions are taken greedily by
// error removed per extra byte, one step at a time (a matrix may go to q5 first and to q8 later):
// a knapsack heuristic that is optimal when every step costs the same.
#include "convert/mixed_recipe.hpp"

#include <fmt/format.h>
#include <algorithm>

#include "util/fail.hpp"

namespace qlm::detail {

using detail::fail;

namespace {

struct Level {
  DType type;
  std::uint64_t bytes;
  double nsr;          // output noise-to-signal ratio at this type
  double error = 0.0;  // what the recipe minimizes: measured KL, or estimated from nsr
  bool measured = false;
};

struct Scored {
  const MixedCandidate* c;
  std::vector<Level> levels;  // levels[0] is the base type; then by size
  std::size_t at = 0;         // the chosen level
  double ratio = 0.0;         // error removed per extra byte by the step that reached `at`
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

// With measurements, unmeasured types are scaled from the base's KL by their noise ratio (q8's is
// taken as 0); without, the noise ratio itself is the error.
void assign_errors(Scored& s, const MeasuredSensitivity& measured) {
  const auto it = measured.find(s.c->name);
  const std::map<DType, double>* kl = it != measured.end() ? &it->second : nullptr;
  const Level& base = s.levels.front();
  const auto base_kl = kl ? kl->find(base.type) : std::map<DType, double>::const_iterator{};
  for (Level& l : s.levels) {
    if (kl == nullptr || base_kl == kl->end()) {
      l.error = l.nsr;
    } else if (const auto m = kl->find(l.type); m != kl->end()) {
      l.error = m->second;
      l.measured = true;
    } else {
      l.error = l.type == DType::Q8 || base.nsr <= 0.0 ? 0.0 : base_kl->second * l.nsr / base.nsr;
    }
  }
}

Scored score(const MixedCandidate& c, std::span<const DType> types, quant::ScaleMethod method,
             const MeasuredSensitivity& measured) {
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
  Scored s{&c, {}};
  for (DType t : types)
    s.levels.push_back({t, *tensor_bytes(t, shape), nsr(t, x, c, method, h, sig)});
  assign_errors(s, measured);
  return s;
}

std::string describe(const Scored& s) {
  std::string line =
      fmt::format("{:<4} {}: output noise/signal", to_string(s.levels[s.at].type), s.c->name);
  for (const Level& l : s.levels) line += fmt::format(" {:.2e} at {},", l.nsr, to_string(l.type));
  line.back() = ';';
  std::string kl;
  for (const Level& l : s.levels) {
    if (l.measured) kl += fmt::format(" {:.2e} at {},", l.error, to_string(l.type));
  }
  if (!kl.empty()) {
    kl.pop_back();
    line += " KL" + kl + " with only it quantized;";
  }
  if (s.at > 0) {
    line += fmt::format(" promoted at {:.3g} per extra KiB", s.ratio * 1024.0);
  } else {
    line += s.levels.size() > 1 ? " stays (promotions over budget)" : " stays";
  }
  return line;
}

}  // namespace

MixedPlan plan_mixed(std::span<const MixedCandidate> candidates, std::uint64_t fixed_bytes,
                     std::uint64_t fixed_weights, double max_bits, DType low,
                     std::span<const DType> promotions, quant::ScaleMethod method,
                     const MeasuredSensitivity& measured) {
  if (low != DType::Q4 && low != DType::Q4NL) {
    fail(ErrorCode::InvalidArgument, "mixed recipe: the base type must be q4 or q4nl, not {}",
         to_string(low));
  }
  std::vector<DType> types{low};
  for (DType t : promotions) {
    if (t != DType::Q5 && t != DType::Q8) {
      fail(ErrorCode::InvalidArgument, "mixed recipe: a matrix can be promoted to q5 or q8, not {}",
           to_string(t));
    }
    if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  }
  std::sort(types.begin() + 1, types.end(),
            [](DType a, DType b) { return tile_quant_bytes(a) < tile_quant_bytes(b); });
  std::vector<Scored> scored;
  std::uint64_t bytes = fixed_bytes, weights = fixed_weights;
  for (const auto& c : candidates) {
    scored.push_back(score(c, types, method, measured));
    bytes += scored.back().levels.front().bytes;
    weights += c.rows * c.k;
  }
  const double budget_bytes = max_bits * static_cast<double>(weights) / 8.0;
  if (static_cast<double>(bytes) > budget_bytes) {
    fail(ErrorCode::InvalidArgument,
         "mixed recipe: a budget of {:.3f} bits per weight is below all-{}'s {:.3f}", max_bits,
         to_string(low), 8.0 * static_cast<double>(bytes) / static_cast<double>(weights));
  }
  // One step at a time: the promotion (from where a matrix is now to any larger type) that
  // removes the most error per extra byte and still fits. Ties go to the earlier matrix.
  for (;;) {
    Scored* best = nullptr;
    std::size_t best_to = 0;
    double best_ratio = 0.0;
    for (Scored& s : scored) {
      for (std::size_t to = s.at + 1; to < s.levels.size(); ++to) {
        const std::uint64_t extra = s.levels[to].bytes - s.levels[s.at].bytes;
        const double gain = s.levels[s.at].error - s.levels[to].error;
        if (gain <= 0.0 || static_cast<double>(bytes + extra) > budget_bytes) continue;
        const double ratio = gain / static_cast<double>(extra);
        if (ratio > best_ratio) best = &s, best_to = to, best_ratio = ratio;
      }
    }
    if (best == nullptr) break;
    bytes += best->levels[best_to].bytes - best->levels[best->at].bytes;
    best->at = best_to;
    best->ratio = best_ratio;
  }
  MixedPlan plan;
  for (const Scored& s : scored) {
    plan.types[s.c->name] = s.levels[s.at].type;
    plan.reasons.push_back(describe(s));
  }
  plan.reasons.push_back(
      fmt::format("{:.3f} bits per weight of a {:.2f} budget",
                  8.0 * static_cast<double>(bytes) / static_cast<double>(weights), max_bits));
  return plan;
}

}  // namespace qlm::detail
