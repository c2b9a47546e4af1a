// Importance: accumulation of per-column activation mean squares, and their file (a .qlm container
// whose tensors are f32 vectors named after the matrices they describe).
#include "qlm/importance.hpp"

#include <cmath>
#include <cstring>

#include "qlm/format/file_writer.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/tensor_names.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {
constexpr const char* kTokensKey = "qlm.importance.tokens";
}

Importance::Importance(const ModelConfig& config) : config_(config) {}

void Importance::observe(MatrixInput input, std::uint32_t layer, std::span<const float> x,
                         std::size_t rows) {
  if (rows == 0 || x.size() % rows != 0) return;
  const std::size_t cols = x.size() / rows;
  if (input == MatrixInput::Attention && layer == 0) tokens_ += rows;
  for (const std::string& name : matrices_reading(config_, input, layer)) {
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

std::vector<std::string> Importance::tensors() const {
  std::vector<std::string> names;
  for (const auto& [name, stat] : stats_) names.push_back(name);
  return names;
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
      if (t.dtype != DType::F32 || t.shape.size() != 1) {
        fail(ErrorCode::Format, "{}: tensor '{}' is not an f32 vector", path.string(), t.name);
      }
      Stat& s = imp.stats_[t.name];
      s.mean.resize(t.shape[0]);
      s.sum_sq.resize(t.shape[0]);
      std::memcpy(s.mean.data(), file->data(t).data(), t.size);
      for (float v : s.mean) {
        if (!(v >= 0.0f) || !std::isfinite(v)) {
          fail(ErrorCode::Format, "{}: tensor '{}' holds a negative or non-finite mean square",
               path.string(), t.name);
        }
      }
      s.rows = imp.tokens_;
      for (std::size_t c = 0; c < s.mean.size(); ++c) {  // so that collection can continue
        s.sum_sq[c] = static_cast<double>(s.mean[c]) * static_cast<double>(s.rows);
      }
    }
    return imp;
  });
}

}  // namespace qlm
