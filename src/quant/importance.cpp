// Importance: accumulation of per-column activation mean squares, and their file (a .qlm container
// whose tensors are f32 vectors named after the matrices they describe).
#include "qlm/quant/importance.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qlm/format/file_writer.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/format/tensor_names.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {
constexpr const char* kTokensKey = "qlm.importance.tokens";
constexpr std::string_view kMomentSuffix = ".moment";                // 2-D tensors: E[x x^T]
constexpr const char* kTokenCounts = "qlm.importance.token_counts";  // f32 [vocab]

// An f32 vector of the file whose values must be finite and non-negative (`what` each one is).
std::vector<float> non_negative(const format::ModelFile& file, const format::TensorInfo& t,
                                const std::filesystem::path& path, const char* what) {
  std::vector<float> v(t.shape[0]);
  std::memcpy(v.data(), file.data(t).data(), t.size);
  for (float x : v) {
    if (!(x >= 0.0f) || !std::isfinite(x)) {
      fail(ErrorCode::Format, "{}: tensor '{}' holds a negative or non-finite {}", path.string(),
           t.name, what);
    }
  }
  return v;
}
}  // namespace

Importance::Importance(const ModelConfig& config, std::size_t moment_columns)
    : config_(config), moment_columns_(moment_columns) {}

void Importance::accumulate_moment(const std::string& name, std::span<const float> x,
                                   std::size_t rows) {
  const std::size_t k = x.size() / rows;
  Stat& m = moments_[name];
  if (m.sum_sq.size() != k * k && m.mean.size() == k * k && m.rows > 0) {
    // Loaded from a file: the sums are rebuilt only now, when collection continues, so that a
    // converter that only reads H does not hold them too (k^2 doubles per input).
    m.sum_sq.resize(k * k);
    for (std::size_t i = 0; i < k * k; ++i) {
      m.sum_sq[i] = static_cast<double>(m.mean[i]) * static_cast<double>(m.rows);
    }
  }
  if (m.sum_sq.size() != k * k) {
    m.sum_sq.assign(k * k, 0.0);
    m.mean.assign(k * k, 0.0f);
    m.rows = 0;
  }
  for (std::size_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * k;
    for (std::size_t i = 0; i < k; ++i) {
      const double xi = row[i];
      for (std::size_t j = 0; j <= i; ++j) m.sum_sq[i * k + j] += xi * row[j];
    }
  }
  m.rows += rows;
  const double n = static_cast<double>(m.rows);
  for (std::size_t i = 0; i < k; ++i) {
    for (std::size_t j = 0; j <= i; ++j) {
      m.mean[i * k + j] = m.mean[j * k + i] = static_cast<float>(m.sum_sq[i * k + j] / n);
    }
  }
}

void Importance::observe(MatrixInput input, std::uint32_t layer, std::span<const float> x,
                         std::size_t rows) {
  if (rows == 0 || x.size() % rows != 0) return;
  const std::size_t cols = x.size() / rows;
  if (input == MatrixInput::Attention && layer == 0) tokens_ += rows;
  const std::vector<std::string> names = matrices_reading(config_, input, layer);
  if (!names.empty() && cols <= moment_columns_) accumulate_moment(names.front(), x, rows);
  for (const std::string& name : names) {
    Stat& s = stats_[name];
    if (s.sum_sq.size() != cols) {  // first sight (a model never changes width)
      s.sum_sq.assign(cols, 0.0);
      s.mean.assign(cols, 0.0f);
      s.rows = 0;
    }
    for (std::size_t r = 0; r < rows; ++r) {
      const float* row = x.data() + r * cols;
      for (std::size_t c = 0; c < cols; ++c) s.sum_sq[c] += static_cast<double>(row[c]) * row[c];
    }
    s.rows += rows;
    for (std::size_t c = 0; c < cols; ++c) {
      s.mean[c] = static_cast<float>(s.sum_sq[c] / static_cast<double>(s.rows));
    }
  }
}

std::span<const float> Importance::find(std::string_view tensor) const {
  const auto it = stats_.find(tensor);
  return it == stats_.end() ? std::span<const float>{} : std::span<const float>(it->second.mean);
}

std::span<const float> Importance::second_moment(std::string_view tensor) const {
  const auto it = moments_.find(tensor);
  return it == moments_.end() ? std::span<const float>{} : std::span<const float>(it->second.mean);
}

std::vector<std::string> Importance::tensors() const {
  std::vector<std::string> names;
  for (const auto& [name, stat] : stats_) names.push_back(name);
  return names;
}

void Importance::count_tokens(std::span<const std::int32_t> ids) {
  if (token_counts_.empty()) token_counts_.assign(config_.vocab_size, 0.0f);
  for (std::int32_t id : ids) {
    if (id >= 0 && static_cast<std::size_t>(id) < token_counts_.size()) token_counts_[id] += 1.0f;
  }
}

Result<void> Importance::save(const std::filesystem::path& path) const {
  return detail::capture([&] {
    format::Metadata meta;
    meta.set(kTokensKey, tokens_);
    std::vector<format::PendingTensor> pending;
    for (const auto& [name, stat] : stats_) {
      const std::vector<float>* mean = &stat.mean;
      pending.push_back({name, DType::F32, {mean->size()}, [mean](std::span<std::uint8_t> out) {
                           std::memcpy(out.data(), mean->data(), out.size());
                           return Result<void>{};
                         }});
    }
    for (const auto& [name, moment] : moments_) {
      const std::vector<float>* mean = &moment.mean;
      const std::size_t k = stats_.at(name).mean.size();
      pending.push_back({name + std::string(kMomentSuffix),
                         DType::F32,
                         {k, k},
                         [mean](std::span<std::uint8_t> out) {
                           std::memcpy(out.data(), mean->data(), out.size());
                           return Result<void>{};
                         }});
    }
    if (!token_counts_.empty()) {
      const std::vector<float>* counts = &token_counts_;
      pending.push_back(
          {kTokenCounts, DType::F32, {counts->size()}, [counts](std::span<std::uint8_t> out) {
             std::memcpy(out.data(), counts->data(), out.size());
             return Result<void>{};
           }});
    }
    detail::unwrap(format::write_qlm_file(path, meta, pending));
  });
}

Result<Importance> Importance::load(const std::filesystem::path& path) {
  return detail::capture([&] {
    const auto file = detail::unwrap(format::ModelFile::open(path, {.verify_checksums = true}));
    const auto* tokens = file->metadata().find<std::uint64_t>(kTokensKey);
    if (tokens == nullptr) {
      fail(ErrorCode::Format, "{}: not an importance file (no '{}' metadata)", path.string(),
           kTokensKey);
    }
    Importance imp;
    imp.tokens_ = *tokens;
    for (const auto& t : file->tensors()) {
      if (t.name.ends_with(kMomentSuffix) && t.dtype == DType::F32 && t.shape.size() == 2 &&
          t.shape[0] == t.shape[1]) {
        Stat& m = imp.moments_[t.name.substr(0, t.name.size() - kMomentSuffix.size())];
        m.mean.resize(t.shape[0] * t.shape[1]);
        std::memcpy(m.mean.data(), file->data(t).data(), t.size);
        for (float v : m.mean) {
          if (!std::isfinite(v)) {
            fail(ErrorCode::Format, "{}: tensor '{}' holds a non-finite value", path.string(),
                 t.name);
          }
        }
        m.rows = imp.tokens_;  // the sums follow if collection continues (accumulate_moment)
        imp.moment_columns_ = std::max<std::size_t>(imp.moment_columns_, t.shape[0]);
        continue;
      }
      if (t.dtype != DType::F32 || t.shape.size() != 1) {
        fail(ErrorCode::Format, "{}: tensor '{}' is not an f32 vector", path.string(), t.name);
      }
      if (t.name == kTokenCounts) {
        imp.token_counts_ = non_negative(*file, t, path, "count");
        continue;
      }
      Stat& s = imp.stats_[t.name];
      s.mean = non_negative(*file, t, path, "mean square");
      s.sum_sq.resize(t.shape[0]);
      s.rows = imp.tokens_;
      for (std::size_t c = 0; c < s.mean.size(); ++c) {  // so that collection can continue
        s.sum_sq[c] = static_cast<double>(s.mean[c]) * static_cast<double>(s.rows);
      }
    }
    return imp;
  });
}

}  // namespace qlm
