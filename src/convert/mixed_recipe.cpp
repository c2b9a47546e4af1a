// plan_mixed: each matrix's error at each type is its output noise-to-signal ratio, with noise and
// signal weighted by the input's second moment (H, or the importance of each input column: the
// expected squared output error of the product, when calibration statistics are given); or, where
// measured, the KL divergence with only this matrix at that type. A matrix is cut into bands of
// whole row groups, and each band carries the share of that error its rows' output errors make up
// (weighted per row: a token that never occurs costs nothing, whatever its error). Promotions are
// taken greedily by error removed per extra byte, one step at a time (a band may go to q5 first
// and to q8 later): a knapsack heuristic that is optimal when every step costs the same.
#include "convert/mixed_recipe.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <numeric>

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
  std::vector<double> row_noise{};  // each row's output error at this type
};

struct Scored {
  const MixedCandidate* c;
  std::vector<Level> levels;  // levels[0] is the base type; then by size
};

// A band of whole row groups of one matrix: what the recipe promotes.
struct Unit {
  const Scored* s;
  std::uint64_t row0, row1;
  std::vector<std::uint64_t> bytes;  // at each level
  std::vector<double> error;         // at each level: the matrix's error times this band's share
  std::size_t at = 0;                // the chosen level
  double ratio = 0.0;                // error removed per extra byte by the step that reached `at`
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
Level level(DType t, std::span<const float> x, const MixedCandidate& c, quant::ScaleMethod method,
            std::span<const float> h, std::span<const double> u, double sig, ThreadPool* pool) {
  const quant::TileGeometry geo(t, c.rows, c.k);
  std::vector<std::uint8_t> q(geo.total_bytes());
  quant::quantize_matrix(t, x, c.rows, c.k, q,
                         {.method = method,
                          .importance = c.importance,
                          .hessian = h,
                          .pool = pool,
                          .hessian_factor = u});
  Level l{t, *tensor_bytes(t, std::vector<std::uint64_t>{c.rows, c.k}), 0.0};
  l.row_noise = quant::row_errors(t, x, q, c.rows, c.k,
                                  h.empty() ? c.importance : std::span<const float>{}, h, pool);
  const double err = std::accumulate(l.row_noise.begin(), l.row_noise.end(), 0.0);
  l.nsr = sig > 0.0 ? err / sig : 0.0;
  return l;
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
             const MeasuredSensitivity& measured, ThreadPool* pool) {
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
  Scored s{&c, {}};
  const std::vector<double> u = h.empty() ? std::vector<double>{} : quant::gptq_factor(h, c.k);
  for (DType t : types) s.levels.push_back(level(t, x, c, method, h, u, sig, pool));
  assign_errors(s, measured);
  return s;
}

// Cuts a matrix into at most max_bands bands of whole row groups, each carrying its share of the
// matrix's error at every level.
void add_units(const Scored& s, std::uint32_t max_bands, std::vector<Unit>& units) {
  const MixedCandidate& c = *s.c;
  const std::uint64_t groups = (c.rows + kRowGroup - 1) / kRowGroup;
  const std::uint64_t bands = std::max<std::uint64_t>(1, max_bands);
  const std::uint64_t step = (groups + bands - 1) / bands * kRowGroup;
  auto weight = [&](std::uint64_t r) { return c.row_weights.empty() ? 1.0 : c.row_weights[r]; };
  const std::size_t first = units.size();
  std::vector<double> total(s.levels.size(), 0.0);
  for (std::uint64_t r0 = 0; r0 < c.rows; r0 += step) {
    Unit u{&s, r0, std::min(c.rows, r0 + step), {}, {}};
    for (std::size_t l = 0; l < s.levels.size(); ++l) {
      double part = 0.0;
      for (std::uint64_t r = u.row0; r < u.row1; ++r) part += weight(r) * s.levels[l].row_noise[r];
      total[l] += part;
      u.bytes.push_back(
          *tensor_bytes(s.levels[l].type, std::vector<std::uint64_t>{u.row1 - u.row0, c.k}));
      u.error.push_back(part);  // the band's weighted output error, shared out below
    }
    units.push_back(std::move(u));
  }
  for (std::size_t i = first; i < units.size(); ++i) {
    Unit& u = units[i];
    for (std::size_t l = 0; l < s.levels.size(); ++l) {
      const double share =
          total[l] > 0.0 ? u.error[l] / total[l] : static_cast<double>(u.row1 - u.row0) / c.rows;
      u.error[l] = s.levels[l].error * share;
    }
  }
}

// The matrix's bands: runs of units at the same type.
MatrixLayout layout_of(std::span<const Unit> units) {
  MatrixLayout layout;
  for (const Unit& u : units) {
    const DType t = u.s->levels[u.at].type;
    if (!layout.empty() && layout.back().type == t) {
      layout.back().row1 = u.row1;
    } else {
      layout.push_back({u.row0, u.row1, t});
    }
  }
  return layout;
}

std::string describe(const Scored& s, std::span<const Unit> units) {
  const MatrixLayout layout = layout_of(units);
  std::vector<DType> present;
  for (const Level& l : s.levels) {
    if (std::any_of(layout.begin(), layout.end(), [&](const auto& b) { return b.type == l.type; }))
      present.push_back(l.type);
  }
  std::string label;
  for (DType t : present) label += fmt::format("{}{}", label.empty() ? "" : "+", to_string(t));
  std::string line = fmt::format("{:<4} {}: output noise/signal", label, s.c->name);
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
  double least = 0.0;
  for (const Unit& u : units) {
    if (u.at > 0 && (least == 0.0 || u.ratio < least)) least = u.ratio;
  }
  if (layout.size() > 1) {
    line += " rows";
    for (const TypedBand& b : layout)
      line += fmt::format(" {}-{} {},", b.row0, b.row1, to_string(b.type));
    line.back() = ';';
  }
  if (least > 0.0) {
    line += fmt::format(" promoted at {:.3g} per extra KiB", least * 1024.0);
    if (layout.size() > 1) line += " or more";
  } else {
    line += s.levels.size() > 1 ? " stays (promotions over budget)" : " stays";
  }
  return line;
}

}  // namespace

MixedPlan plan_mixed(std::span<const MixedCandidate> candidates, std::uint64_t fixed_bytes,
                     std::uint64_t fixed_weights, double max_bits, DType low,
                     std::span<const DType> promotions, quant::ScaleMethod method,
                     const MeasuredSensitivity& measured, std::uint32_t max_bands,
                     ThreadPool* pool) {
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
  scored.reserve(candidates.size());  // units point into it
  std::uint64_t bytes = fixed_bytes, weights = fixed_weights;
  for (const auto& c : candidates) {
    if (!c.row_weights.empty() && c.row_weights.size() != c.rows) {
      fail(ErrorCode::InvalidArgument, "mixed recipe: {} has {} rows but {} row weights", c.name,
           c.rows, c.row_weights.size());
    }
    scored.push_back(score(c, types, method, measured, pool));
    bytes += scored.back().levels.front().bytes;
    weights += c.rows * c.k;
  }
  std::vector<Unit> units;
  std::vector<std::size_t> first_unit;  // per matrix
  for (const Scored& s : scored) {
    first_unit.push_back(units.size());
    add_units(s, max_bands, units);
  }
  first_unit.push_back(units.size());
  const double budget_bytes = max_bits * static_cast<double>(weights) / 8.0;
  if (static_cast<double>(bytes) > budget_bytes) {
    fail(ErrorCode::InvalidArgument,
         "mixed recipe: a budget of {:.3f} bits per weight is below all-{}'s {:.3f}", max_bits,
         to_string(low), 8.0 * static_cast<double>(bytes) / static_cast<double>(weights));
  }
  // One step at a time: the promotion (of a band, from where it is now to any larger type) that
  // removes the most error per extra byte and still fits. Ties go to the earlier band.
  for (;;) {
    Unit* best = nullptr;
    std::size_t best_to = 0;
    double best_ratio = 0.0;
    for (Unit& u : units) {
      for (std::size_t to = u.at + 1; to < u.bytes.size(); ++to) {
        const std::uint64_t extra = u.bytes[to] - u.bytes[u.at];
        const double gain = u.error[u.at] - u.error[to];
        if (gain <= 0.0 || static_cast<double>(bytes + extra) > budget_bytes) continue;
        const double ratio = gain / static_cast<double>(extra);
        if (ratio > best_ratio) best = &u, best_to = to, best_ratio = ratio;
      }
    }
    if (best == nullptr) break;
    bytes += best->bytes[best_to] - best->bytes[best->at];
    best->at = best_to;
    best->ratio = best_ratio;
  }
  MixedPlan plan;
  for (std::size_t i = 0; i < scored.size(); ++i) {
    const std::span<const Unit> mine(units.data() + first_unit[i],
                                     first_unit[i + 1] - first_unit[i]);
    plan.layouts[scored[i].c->name] = layout_of(mine);
    plan.reasons.push_back(describe(scored[i], mine));
  }
  plan.reasons.push_back(
      fmt::format("{:.3f} bits per weight of a {:.2f} budget",
                  8.0 * static_cast<double>(bytes) / static_cast<double>(weights), max_bits));
  return plan;
}

}  // namespace qlm::detail
