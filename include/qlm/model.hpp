// Model: an opened .qlm file — config, tokenizer and memory-mapped weights. Immutable after open
// and shared (std::shared_ptr<const Model>) by any number of sessions on any threads.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/error.hpp"
#include "qlm/tokenizer.hpp"

namespace qlm {

namespace format {
class ModelFile;
}
namespace detail {
struct ModelWeights;
struct ModelAccess;  // src/model_access.hpp: the library's own view of the file and weights
}  // namespace detail

/// How to open a model.
struct LoadOptions {
  bool verify_checksums = false;  ///< hash every tensor on open (reads the whole file; default off)
  bool populate = false;          ///< pre-fault the mapping so the first tokens pay no page faults
  /// false: read the file into private memory (huge pages where allowed) instead of mapping it,
  /// like llama.cpp's --no-mmap: slower to open, not shared, steadier decode (bench/RESULTS.md).
  bool mmap = true;
  /// Public key files (NAME.pub from `qlm-sign keygen`). When any are given, open() refuses a
  /// file that is unsigned, altered since it was signed, or signed by a key not listed here.
  std::vector<std::filesystem::path> trusted_keys{};
};

/// A loaded model. Weights are views into the mapped file; nothing is copied.
class Model {
 public:
  /// Opens `path`; every problem (format, missing tensor, bad shape, bad tokenizer) is an Error
  /// naming the file.
  static Result<std::shared_ptr<const Model>> open(const std::filesystem::path& path,
                                                   LoadOptions options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  /// The tokenizer, built and validated by open().
  const Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  friend struct detail::ModelAccess;
  Model(std::shared_ptr<const format::ModelFile> file, ModelConfig config, Tokenizer tokenizer);
  std::shared_ptr<const format::ModelFile> file_;
  ModelConfig config_;
  Tokenizer tokenizer_;
  std::unique_ptr<const detail::ModelWeights> weights_;
};

}  // namespace qlm
