// The Llama-family tensor list (llama, mistral, qwen2 and qwen3 share it; qwen2 adds q/k/v biases,
// qwen3 per-head q/k norms; gemma3_text q/k norms and norms after attention and the MLP;
// starcoder2 adds LayerNorm and o_proj biases and has a non-gated MLP,
// mlp.c_fc / mlp.c_proj with biases, in place of gate/up/down).
#include "qlm/format/tensor_names.hpp"

#include <charconv>

namespace qlm {

std::string band_tensor(std::string_view matrix, RowBand band) {
  return std::string(matrix) + "[" + std::to_string(band.row0) + ":" + std::to_string(band.row1) +
         "]";
}

std::optional<RowBand> parse_band_tensor(std::string_view tensor, std::string_view matrix) {
  if (!tensor.starts_with(matrix) || tensor.size() < matrix.size() + 5) return std::nullopt;
  std::string_view s = tensor.substr(matrix.size());
  if (s.front() != '[' || s.back() != ']') return std::nullopt;
  s = s.substr(1, s.size() - 2);
  RowBand b;
  const char* end = s.data() + s.size();
  auto [colon, e1] = std::from_chars(s.data(), end, b.row0);
  if (e1 != std::errc{} || colon == end || *colon != ':') return std::nullopt;
  auto [last, e2] = std::from_chars(colon + 1, end, b.row1);
  if (e2 != std::errc{} || last != end) return std::nullopt;
  return b;
}

std::string layer_tensor(std::uint32_t layer, const char* suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const std::uint64_t d = c.hidden_size, ff = c.intermediate_size;
  const std::uint64_t q = std::uint64_t{c.n_heads} * c.head_dim;
  const std::uint64_t kv = std::uint64_t{c.n_kv_heads} * c.head_dim;
  std::vector<ExpectedTensor> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, d}, true});
  const bool ln = c.layer_norm(), ob = c.output_biases();
  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    t.push_back({layer_tensor(l, "input_layernorm.weight"), {d}, false});
    if (ln) t.push_back({layer_tensor(l, "input_layernorm.bias"), {d}, false});
    t.push_back({layer_tensor(l, "self_attn.q_proj.weight"), {q, d}, true});
    t.push_back({layer_tensor(l, "self_attn.k_proj.weight"), {kv, d}, true});
    t.push_back({layer_tensor(l, "self_attn.v_proj.weight"), {kv, d}, true});
    if (c.attention_bias) {
      t.push_back({layer_tensor(l, "self_attn.q_proj.bias"), {q}, false});
      t.push_back({layer_tensor(l, "self_attn.k_proj.bias"), {kv}, false});
      t.push_back({layer_tensor(l, "self_attn.v_proj.bias"), {kv}, false});
    }
    if (c.qk_norm()) {
      t.push_back({layer_tensor(l, "self_attn.q_norm.weight"), {c.head_dim}, false});
      t.push_back({layer_tensor(l, "self_attn.k_norm.weight"), {c.head_dim}, false});
    }
    t.push_back({layer_tensor(l, "self_attn.o_proj.weight"), {d, q}, true});
    if (ob) t.push_back({layer_tensor(l, "self_attn.o_proj.bias"), {d}, false});
    t.push_back({layer_tensor(l, "post_attention_layernorm.weight"), {d}, false});
    if (ln) t.push_back({layer_tensor(l, "post_attention_layernorm.bias"), {d}, false});
    if (c.gemma()) {
      t.push_back({layer_tensor(l, "pre_feedforward_layernorm.weight"), {d}, false});
      t.push_back({layer_tensor(l, "post_feedforward_layernorm.weight"), {d}, false});
    }
    if (!c.gated_mlp()) {
      t.push_back({layer_tensor(l, "mlp.c_fc.weight"), {ff, d}, true});
      if (ob) t.push_back({layer_tensor(l, "mlp.c_fc.bias"), {ff}, false});
      t.push_back({layer_tensor(l, "mlp.c_proj.weight"), {d, ff}, true});
      if (ob) t.push_back({layer_tensor(l, "mlp.c_proj.bias"), {d}, false});
      continue;
    }
    t.push_back({layer_tensor(l, "mlp.gate_proj.weight"), {ff, d}, true});
    t.push_back({layer_tensor(l, "mlp.up_proj.weight"), {ff, d}, true});
    t.push_back({layer_tensor(l, "mlp.down_proj.weight"), {d, ff}, true});
  }
  t.push_back({"model.norm.weight", {d}, false});
  if (ln) t.push_back({"model.norm.bias", {d}, false});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, d}, true});
  return t;
}

std::optional<TensorSource> fused_source(const ModelConfig& c, std::string_view name) {
  if (c.arch != Architecture::Phi3 || !name.starts_with("model.layers.")) return std::nullopt;
  const std::uint64_t q = std::uint64_t{c.n_heads} * c.head_dim;
  const std::uint64_t kv = std::uint64_t{c.n_kv_heads} * c.head_dim, ff = c.intermediate_size;
  const std::string_view rest = name.substr(name.find('.', 13) + 1);  // after "model.layers.N."
  const std::string prefix(name.substr(0, name.size() - rest.size()));
  const std::string qkv = prefix + "self_attn.qkv_proj.weight";
  const std::string gate_up = prefix + "mlp.gate_up_proj.weight";
  if (rest == "self_attn.q_proj.weight") return TensorSource{qkv, 0, q, q + 2 * kv};
  if (rest == "self_attn.k_proj.weight") return TensorSource{qkv, q, kv, q + 2 * kv};
  if (rest == "self_attn.v_proj.weight") return TensorSource{qkv, q + kv, kv, q + 2 * kv};
  if (rest == "mlp.gate_proj.weight") return TensorSource{gate_up, 0, ff, 2 * ff};
  if (rest == "mlp.up_proj.weight") return TensorSource{gate_up, ff, ff, 2 * ff};
  return std::nullopt;
}

const char* mlp_norm_name(const ModelConfig& c) {
  return c.gemma() ? "pre_feedforward_layernorm" : "post_attention_layernorm";
}

bool gemma_norm(const ModelConfig& c, std::string_view name) {
  return c.gemma() && (name.ends_with("layernorm.weight") || name.ends_with("_norm.weight") ||
                       name == "model.norm.weight");
}

std::vector<std::string> matrices_reading(const ModelConfig& c, MatrixInput input,
                                          std::uint32_t layer) {
  switch (input) {
    case MatrixInput::Attention:
      return {layer_tensor(layer, "self_attn.q_proj.weight"),
              layer_tensor(layer, "self_attn.k_proj.weight"),
              layer_tensor(layer, "self_attn.v_proj.weight")};
    case MatrixInput::AttentionOutput:
      return {layer_tensor(layer, "self_attn.o_proj.weight")};
    case MatrixInput::Mlp:
      if (!c.gated_mlp()) return {layer_tensor(layer, "mlp.c_fc.weight")};
      return {layer_tensor(layer, "mlp.gate_proj.weight"),
              layer_tensor(layer, "mlp.up_proj.weight")};
    case MatrixInput::MlpHidden:
      if (!c.gated_mlp()) return {layer_tensor(layer, "mlp.c_proj.weight")};
      return {layer_tensor(layer, "mlp.down_proj.weight")};
    case MatrixInput::Head:
      return {c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"};
  }
  return {};
}

}  // namespace qlm
