// Typed views of a model's tensors inside the mapped .qlm file, grouped per layer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/dtype.hpp"
#include "qlm/format/model_file.hpp"

namespace qlm::detail {

/// A [rows, k] weight matrix of any DType (a view into the mapping).
struct Matrix {
  DType dtype = DType::F32;
  std::uint32_t rows = 0;
  std::uint32_t k = 0;
  std::span<const std::uint8_t> data;
};

/// A set of views for one decoder layer; biases are empty when the architecture has none.
struct LayerWeights {
  std::span<const float> attn_norm;   // [hidden]
  Matrix wq, wk, wv, wo;              // [n_heads*hd, d], [n_kv*hd, d] x2, [d, n_heads*hd]
  std::span<const float> bq, bk, bv;  // [n_heads*hd], [n_kv*hd] x2 (qwen2)
  std::span<const float> ffn_norm;    // [hidden]
  Matrix w_gate, w_up, w_down;        // [ff, d] x2, [d, ff]
};

/// All weight views of a model.
struct ModelWeights {
  Matrix embed;                       // [vocab, d]
  Matrix lm_head;                     // [vocab, d]; the embedding itself when tied
  std::span<const float> final_norm;  // [d]
  std::vector<LayerWeights> layers;
};

/// Builds the views, checking every tensor's presence, shape and type against `config`.
ModelWeights bind_weights(const format::ModelFile& file, const ModelConfig& config);

}  // namespace qlm::detail
