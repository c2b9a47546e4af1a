// Model::open: map the file, read config and tokenizer, bind weight views (no copies).
#include "qlm/model.hpp"

#include <algorithm>
#include <map>

#include "model_weights.hpp"
#include "qlm/format/model_config.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/format/signature.hpp"
#include "qlm/format/tensor_names.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "util/fail.hpp"

namespace qlm {

namespace detail {
namespace {

Matrix single_band(const format::ModelFile& file, const format::TensorView& t,
                   const ExpectedTensor& e) {
  if (t.info->shape != e.shape) {
    fail(ErrorCode::Format, "{}: tensor '{}' has shape {} but the config implies {}", file.path(),
         e.name, fmt::join(t.info->shape, "x"), fmt::join(e.shape, "x"));
  }
  const auto rows = static_cast<std::uint32_t>(e.shape[0]);
  return Matrix{rows, static_cast<std::uint32_t>(e.shape[1]), {{t.info->dtype, 0, rows, t.data}}};
}

// A matrix is one tensor of its own name, or bands `name[r0:r1]` that cover its rows in order
// with interior edges on whole row groups (so each band has a tile layout of its own).
Matrix bind_matrix(const format::ModelFile& file, const ExpectedTensor& e) {
  std::vector<std::pair<RowBand, const format::TensorInfo*>> found;
  for (const auto& t : file.tensors()) {
    if (auto b = parse_band_tensor(t.name, e.name)) found.emplace_back(*b, &t);
  }
  const auto whole = file.find(e.name);
  if (whole && !found.empty()) {
    fail(ErrorCode::Format, "{}: matrix '{}' is stored both whole and in bands ('{}')", file.path(),
         e.name, found.front().second->name);
  }
  if (whole) return single_band(file, *whole, e);
  if (found.empty()) fail(ErrorCode::Format, "{}: missing tensor '{}'", file.path(), e.name);
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first.row0 < b.first.row0; });
  Matrix m{static_cast<std::uint32_t>(e.shape[0]), static_cast<std::uint32_t>(e.shape[1]), {}};
  std::uint64_t next = 0;
  for (const auto& [band, info] : found) {
    if (band.row0 != next || band.row1 <= band.row0 || band.row1 > m.rows ||
        (band.row1 < m.rows && band.row1 % kRowGroup != 0)) {
      fail(ErrorCode::Format,
           "{}: band '{}' of a {}-row matrix does not start where the bands before end (row {}) "
           "or does not end on a {}-row group",
           file.path(), info->name, m.rows, next, kRowGroup);
    }
    const std::vector<std::uint64_t> shape{band.row1 - band.row0, m.k};
    if (info->shape != shape) {
      fail(ErrorCode::Format, "{}: band '{}' has shape {} but its rows and the config imply {}",
           file.path(), info->name, fmt::join(info->shape, "x"), fmt::join(shape, "x"));
    }
    m.bands.push_back({info->dtype, static_cast<std::uint32_t>(band.row0),
                       static_cast<std::uint32_t>(band.row1 - band.row0), file.data(*info)});
    next = band.row1;
  }
  if (next != m.rows) {
    fail(ErrorCode::Format, "{}: the bands of '{}' end at row {} of {}", file.path(), e.name, next,
         m.rows);
  }
  return m;
}

// 1-D tensors are always f32; the mapping is page aligned and payloads 64-byte aligned, so
// viewing them as floats is aligned.
std::span<const float> bind_vector(const format::ModelFile& file, const std::string& name) {
  const auto t = file.find(name);
  if (!t) fail(ErrorCode::Format, "{}: missing tensor '{}'", file.path(), name);
  if (t->info->dtype != DType::F32 || t->info->shape.size() != 1) {
    fail(ErrorCode::Unsupported, "{}: tensor '{}' must be a 1-D f32 vector", file.path(), name);
  }
  return {reinterpret_cast<const float*>(t->data.data()), t->info->shape[0]};
}

}  // namespace

ModelWeights bind_weights(const format::ModelFile& file, const ModelConfig& c) {
  std::map<std::string, Matrix> matrices;
  for (const auto& e : expected_tensors(c)) {  // shapes first, so views below can trust them
    if (e.matrix) {
      matrices.emplace(e.name, bind_matrix(file, e));
      continue;
    }
    const auto t = file.find(e.name);
    if (!t) fail(ErrorCode::Format, "{}: missing tensor '{}'", file.path(), e.name);
    if (t->info->shape != e.shape) {
      fail(ErrorCode::Format, "{}: tensor '{}' has shape {} but the config implies {}", file.path(),
           e.name, fmt::join(t->info->shape, "x"), fmt::join(e.shape, "x"));
    }
  }
  ModelWeights w;
  w.embed = matrices.at("model.embed_tokens.weight");
  w.lm_head = c.tie_word_embeddings ? w.embed : matrices.at("lm_head.weight");
  w.final_norm = bind_vector(file, "model.norm.weight");
  if (c.layer_norm()) w.final_norm_b = bind_vector(file, "model.norm.bias");
  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    LayerWeights lw;
    auto m = [&](const char* s) { return matrices.at(layer_tensor(l, s)); };
    auto v = [&](const char* s) { return bind_vector(file, layer_tensor(l, s)); };
    lw.attn_norm = v("input_layernorm.weight");
    if (c.layer_norm()) {
      lw.attn_norm_b = v("input_layernorm.bias");
      lw.ffn_norm_b = v("post_attention_layernorm.bias");
    }
    lw.wq = m("self_attn.q_proj.weight");
    lw.wk = m("self_attn.k_proj.weight");
    lw.wv = m("self_attn.v_proj.weight");
    lw.wo = m("self_attn.o_proj.weight");
    if (c.attention_bias) {
      lw.bq = v("self_attn.q_proj.bias");
      lw.bk = v("self_attn.k_proj.bias");
      lw.bv = v("self_attn.v_proj.bias");
    }
    if (c.qk_norm()) {
      lw.q_norm = v("self_attn.q_norm.weight");
      lw.k_norm = v("self_attn.k_norm.weight");
    }
    lw.ffn_norm =
        bind_vector(file, layer_tensor(l, fmt::format("{}.weight", mlp_norm_name(c)).c_str()));
    if (c.gemma()) {
      lw.post_attn_norm = v("post_attention_layernorm.weight");
      lw.post_ffn_norm = v("post_feedforward_layernorm.weight");
    }
    if (c.output_biases()) {
      lw.bo = v("self_attn.o_proj.bias");
      lw.b_up = v("mlp.c_fc.bias");
      lw.b_down = v("mlp.c_proj.bias");
    }
    if (c.gated_mlp()) {
      lw.w_gate = m("mlp.gate_proj.weight");
      lw.w_up = m("mlp.up_proj.weight");
      lw.w_down = m("mlp.down_proj.weight");
    } else {  // starcoder2: x -> c_fc -> gelu -> c_proj
      lw.w_up = m("mlp.c_fc.weight");
      lw.w_down = m("mlp.c_proj.weight");
    }
    w.layers.push_back(lw);
  }
  return w;
}

}  // namespace detail

namespace {

// Builds the Tokenizer from the "tokenizer." keys of `meta`, decoded from `file`.
Tokenizer build_tokenizer(const format::Metadata& meta, const std::string& file,
                          std::uint32_t vocab_size) {
  Vocabulary vocab = detail::unwrap(load_vocabulary(meta, file));
  if (vocab.tokens.size() > vocab_size) {
    detail::fail(ErrorCode::Format, "{}: tokenizer has {} tokens but the model only {} logits",
                 file, vocab.tokens.size(), vocab_size);
  }
  return detail::unwrap(Tokenizer::create(std::move(vocab)));
}

}  // namespace

Model::Model(std::shared_ptr<const format::ModelFile> file, ModelConfig config, Tokenizer tokenizer)
    : file_(std::move(file)), config_(config), tokenizer_(std::move(tokenizer)) {
  weights_ = std::make_unique<const detail::ModelWeights>(detail::bind_weights(*file_, config_));
}

Model::~Model() = default;

Result<std::shared_ptr<const Model>> Model::open(const std::filesystem::path& path,
                                                 LoadOptions options) {
  return detail::capture([&] {
    std::shared_ptr<format::ModelFile> file = detail::unwrap(format::ModelFile::open(
        path, format::OpenOptions{options.verify_checksums, options.populate, !options.mmap}));
    if (!options.trusted_keys.empty()) {
      std::vector<format::PublicKey> keys;
      for (const auto& k : options.trusted_keys)
        keys.push_back(detail::unwrap(format::read_public_key(k)));
      detail::unwrap(format::verify_signature(file->bytes(), keys, file->path()));
    }
    ModelConfig config = detail::unwrap(load_config(file->metadata(), file->path()));
    // The tokenizer's keys (most of the metadata) leave the decoded metadata as the tokenizer is
    // built from them, so they are decoded once and held once.
    Tokenizer tokenizer =
        build_tokenizer(file->take_metadata("tokenizer."), file->path(), config.vocab_size);
    return std::shared_ptr<const Model>(new Model(std::move(file), config, std::move(tokenizer)));
  });
}

}  // namespace qlm
