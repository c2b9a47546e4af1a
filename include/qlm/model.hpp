// Model: an opened .qlm file — config, tokenizer and memory-mapped weights. Immutable after open
// and shared (std::shared_ptr<const Model>) by any number of sessions on any threads.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include "qlm/config.hpp"
#include "qlm/error.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/tokenizer.hpp"

namespace qlm {

namespace detail {
struct ModelWeights;
}

/// How to open a model.
struct LoadOptions {
  bool verify_checksums = false;  ///< hash every tensor on open (reads the whole file; default off)
  bool populate = false;          ///< pre-fault the mapping so the first tokens pay no page faults
  /// false: read the file into private memory (huge pages where allowed) instead of mapping it,
  /// like llama.cpp's --no-mmap: slower to open, not shared, steadier decode (bench/RESULTS.md).
  bool mmap = true;
};

/// A loaded model. Weights are views into the mapped file; nothing is copied.
class Model {
 public:
  /// Opens `path`; every problem (format, missing tensor, bad shape) is an Error naming the file.
  static Result<std::shared_ptr<const Model>> open(const std::filesystem::path& path,
                                                   LoadOptions options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  /// The tokenizer, validated by open() but built on first use (a 49k-token vocabulary's tables
  /// take ~4 MB, which applications that pass token ids never need). Thread-safe.
  const Tokenizer& tokenizer() const;
  /// The mapped file. Its decoded metadata lacks the "tokenizer." keys (see tokenizer()).
  const format::ModelFile& file() const { return *file_; }
  /// The weight views (internal layout; see src/model_weights.hpp).
  const detail::ModelWeights& weights() const { return *weights_; }

 private:
  Model(std::shared_ptr<const format::ModelFile> file, ModelConfig config);
  std::shared_ptr<const format::ModelFile> file_;
  ModelConfig config_;
  mutable std::once_flag tokenizer_once_;
  mutable std::optional<Tokenizer> tokenizer_;
  std::unique_ptr<const detail::ModelWeights> weights_;
};

}  // namespace qlm
