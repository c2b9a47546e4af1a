// Typed views of a model's tensors inside the mapped .qlm file, grouped per layer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/format/dtype.hpp"
#include "qlm/format/model_file.hpp"

namespace qlm::detail {

/// Rows [row0, row0 + rows) of a weight matrix, stored at one DType (a view into the mapping).
struct MatrixBand {
  DType dtype = DType::F32;
  std::uint32_t row0 = 0;
  std::uint32_t rows = 0;
  std::span<const std::uint8_t> data;
};

/// A [rows, k] weight matrix: one band, or several of different types (a mixed recipe may keep
/// some of a matrix's rows at more bits). Bands are in row order and interior edges fall on whole
/// 16-row groups, so each band is laid out as a matrix of its own.
struct Matrix {
  std::uint32_t rows = 0;
  std::uint32_t k = 0;
  std::vector<MatrixBand> bands;

  /// Writes row r (< rows) as f32 into out[0, k).
  void dequantize_row(std::uint32_t r, std::span<float> out) const;
  /// Whether any band is stored at `t`.
  bool has(DType t) const;
  /// Whether any band holds quantized (integer-kernel) weights.
  bool any_quantized() const;
};

/// A set of views for one decoder layer; biases and q/k norms are empty when the architecture has
/// none.
struct LayerWeights {
  std::span<const float> attn_norm;       // [hidden]
  Matrix wq, wk, wv, wo;                  // [n_heads*hd, d], [n_kv*hd, d] x2, [d, n_heads*hd]
  std::span<const float> bq, bk, bv;      // [n_heads*hd], [n_kv*hd] x2 (qwen2)
  std::span<const float> q_norm, k_norm;  // [hd] each, shared by all heads (qwen3)
  std::span<const float> ffn_norm;        // [hidden]
  Matrix w_gate, w_up, w_down;            // [ff, d] x2, [d, ff]; w_gate empty when not gated
  // starcoder2: LayerNorm biases [hidden]; o_proj [hidden], c_fc (w_up) [ff], c_proj (w_down)
  // [hidden] biases. Empty otherwise.
  std::span<const float> attn_norm_b, ffn_norm_b, bo, b_up, b_down;
  // gemma3: RMSNorms of the attention output and of the MLP output, before each residual add
  // [hidden]. Empty otherwise.
  std::span<const float> post_attn_norm, post_ffn_norm;
};

/// All weight views of a model.
struct ModelWeights {
  Matrix embed;                         // [vocab, d]
  Matrix lm_head;                       // [vocab, d]; the embedding itself when tied
  std::span<const float> final_norm;    // [d]
  std::span<const float> final_norm_b;  // [d], starcoder2's LayerNorm bias; empty otherwise
  std::vector<LayerWeights> layers;
};

/// Builds the views, checking every tensor's presence, shape and type against `config`.
ModelWeights bind_weights(const format::ModelFile& file, const ModelConfig& config);

}  // namespace qlm::detail
