// plan_channel_scales: per site, try alpha in 0, 1/8, ..., 1 and keep the one with the lowest
// relative output error summed over the site's matrices (measured on a sample of row groups, so
// large models stay quick). The error of a scaled matrix W' = W diag(s) reading x / s is
// sum_c imp_c / s_c^2 * sum_r (Q(W')_rc - W'_rc)^2: the same output error, in scaled coordinates.
#include "convert/channel_scales.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>

#include "qlm/format/tensor_names.hpp"

namespace qlm::detail {
namespace {

constexpr std::size_t kSampleRows = 256;  // rows per matrix the alpha search quantizes

// One site: matrices reading the same input, the importance of that input, and the producer rows
// the inverse scale goes to.
struct Site {
  std::vector<std::string> matrices;
  std::span<const float> importance;   // per column of the matrices
  std::vector<std::string> producers;  // tensors whose rows/elements are divided
  std::uint32_t group = 1;             // o_proj: query heads per KV head (columns -> producer rows)
  std::uint32_t head_dim = 0;
};

std::vector<float> scales_for(std::span<const float> imp, float alpha) {
  double log_mean = 0.0;
  for (float v : imp) log_mean += std::log(std::max(v, 1e-20f));
  log_mean /= static_cast<double>(imp.size());
  std::vector<float> s(imp.size());
  for (std::size_t c = 0; c < s.size(); ++c) {
    const double rel = std::log(std::max(imp[c], 1e-20f)) - log_mean;
    s[c] = static_cast<float>(std::exp(std::clamp(alpha * rel, -4.0, 4.0)));  // within e^+-4
  }
  return s;
}

// o_proj columns are (head, dim); v_proj rows are (kv head, dim): heads of one group share a row,
// so their columns share its scale (the mean importance of the group).
std::vector<float> grouped_importance(std::span<const float> imp, std::uint32_t group,
                                      std::uint32_t hd) {
  const std::size_t kv = imp.size() / (static_cast<std::size_t>(group) * hd);
  std::vector<float> out(imp.size());
  for (std::size_t g = 0; g < kv; ++g) {
    for (std::uint32_t i = 0; i < hd; ++i) {
      double sum = 0.0;
      for (std::uint32_t j = 0; j < group; ++j) sum += imp[(g * group + j) * hd + i];
      for (std::uint32_t j = 0; j < group; ++j) {
        out[(g * group + j) * hd + i] = static_cast<float>(sum / group);
      }
    }
  }
  return out;
}

// Relative output error of quantizing a row sample of `w` ([rows, k]) scaled by s.
double relative_error(const std::vector<float>& w, std::size_t rows, std::size_t k,
                      std::span<const float> imp, std::span<const float> s, DType type,
                      quant::ScaleMethod method, ThreadPool* pool) {
  const std::size_t step = std::max<std::size_t>(1, rows / kSampleRows);
  std::vector<float> sample, scaled_imp(k);
  double signal = 0.0;
  for (std::size_t r = 0; r < rows; r += step) {
    for (std::size_t c = 0; c < k; ++c) {
      const float v = w[r * k + c];
      sample.push_back(v * s[c]);
      signal += static_cast<double>(imp[c]) * v * v;
    }
  }
  for (std::size_t c = 0; c < k; ++c) scaled_imp[c] = imp[c] / (s[c] * s[c]);
  const std::size_t n = sample.size() / k;
  std::vector<std::uint8_t> q(quant::TileGeometry(type, n, k).total_bytes());
  quant::quantize_matrix(type, sample, n, k, q, {method, scaled_imp, {}, pool});
  const double err = quant::weighted_error(type, sample, q, n, k, scaled_imp, pool);
  return signal > 0.0 ? err / signal : 0.0;
}

std::vector<Site> sites(const ModelConfig& c, const Importance& imp) {
  std::vector<Site> out;
  const std::uint32_t group = c.n_heads / c.n_kv_heads;
  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    auto names = [&](MatrixInput in) { return matrices_reading(c, in, l); };
    const auto attn = names(MatrixInput::Attention), mlp = names(MatrixInput::Mlp);
    const auto o = names(MatrixInput::AttentionOutput), down = names(MatrixInput::MlpHidden);
    // A LayerNorm's bias is scaled with its weight (starcoder2).
    auto norm = [&](const char* name) {
      std::vector<std::string> v{layer_tensor(l, fmt::format("{}.weight", name).c_str())};
      if (c.layer_norm()) v.push_back(layer_tensor(l, fmt::format("{}.bias", name).c_str()));
      return v;
    };
    out.push_back({attn, imp.find(attn[0]), norm("input_layernorm")});
    out.push_back({mlp, imp.find(mlp[0]), norm(mlp_norm_name(c))});
    std::vector<std::string> v_rows{layer_tensor(l, "self_attn.v_proj.weight")};
    if (c.attention_bias) v_rows.push_back(layer_tensor(l, "self_attn.v_proj.bias"));
    out.push_back({o, imp.find(o[0]), v_rows, group, c.head_dim});
    // c_proj's input is gelu(c_fc x): no linear map to fold a scale into (starcoder2).
    if (c.gated_mlp()) {
      out.push_back({down, imp.find(down[0]), {layer_tensor(l, "mlp.up_proj.weight")}});
    }
  }
  return out;
}

}  // namespace

void ChannelScales::apply(const std::string& name, std::span<float> x,
                          std::span<const std::uint64_t> shape) const {
  const std::size_t k = shape.size() == 2 ? shape[1] : shape[0];
  const std::size_t n = x.size() / k;
  if (auto it = columns.find(name); it != columns.end()) {
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t c = 0; c < k; ++c) x[r * k + c] *= it->second[c];
    }
  }
  if (auto it = rows.find(name); it != rows.end()) {
    const bool vector = shape.size() == 1;
    for (std::size_t r = 0; r < (vector ? 1 : n); ++r) {
      for (std::size_t c = 0; c < k; ++c) x[r * k + c] /= it->second[vector ? c : r];
    }
  }
}

ChannelScales plan_channel_scales(const ModelConfig& config, const TensorLoader& load,
                                  const Importance& importance, DType type,
                                  quant::ScaleMethod method, ThreadPool* pool) {
  ChannelScales plan;
  for (const Site& site : sites(config, importance)) {
    if (site.importance.empty()) continue;
    const std::vector<float> imp =
        site.head_dim ? grouped_importance(site.importance, site.group, site.head_dim)
                      : std::vector<float>(site.importance.begin(), site.importance.end());
    std::vector<std::vector<float>> weights;
    for (const auto& m : site.matrices) weights.push_back(load(m));
    const std::size_t k = imp.size();
    double best = 0.0;
    float best_alpha = 0.0f;
    for (int a = 0; a <= 8; ++a) {
      const float alpha = 0.125f * static_cast<float>(a);
      const std::vector<float> s = scales_for(imp, alpha);
      double err = 0.0;
      for (const auto& w : weights) {
        err += relative_error(w, w.size() / k, k, site.importance, s, type, method, pool);
      }
      if (a == 0 || err < best) {
        best = err;
        best_alpha = alpha;
      }
    }
    plan.notes.push_back(fmt::format("{}: alpha {:.3f}", site.matrices[0], best_alpha));
    if (best_alpha == 0.0f) continue;
    const std::vector<float> s = scales_for(imp, best_alpha);
    for (const auto& m : site.matrices) {
      plan.columns[m] = s;
      std::vector<float>& scaled = plan.importance[m];
      for (std::size_t c = 0; c < k; ++c) scaled.push_back(site.importance[c] / (s[c] * s[c]));
    }
    // Producer rows: one per column, except o_proj whose group of heads shares v_proj's rows.
    std::vector<float> produced(k / site.group);
    const std::uint32_t hd = site.head_dim ? site.head_dim : 1;
    for (std::size_t j = 0; j < produced.size(); ++j) {
      const std::size_t g = j / hd, i = j % hd;
      produced[j] = s[(g * site.group) * hd + i];
    }
    for (const auto& p : site.producers) plan.rows[p] = produced;
  }
  return plan;
}

}  // namespace qlm::detail
