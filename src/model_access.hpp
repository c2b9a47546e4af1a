// The library's own access to a Model's mapped file and weight views, which the public header
// keeps opaque (applications see config and tokenizer only).
#pragma once

#include "model_weights.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/model.hpp"

namespace qlm::detail {

struct ModelAccess {
  /// The validated, mapped .qlm file (its metadata without the "tokenizer." keys).
  static const format::ModelFile& file(const Model& m) { return *m.file_; }
  /// Typed views of the weight matrices and vectors.
  static const ModelWeights& weights(const Model& m) { return *m.weights_; }
};

inline const format::ModelFile& model_file(const Model& m) {
  return ModelAccess::file(m);
}
inline const ModelWeights& model_weights(const Model& m) {
  return ModelAccess::weights(m);
}

}  // namespace qlm::detail
