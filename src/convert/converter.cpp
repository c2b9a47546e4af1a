// convert_checkpoint: validate the checkpoint against the architecture's tensor list, then stream
// each tensor through f32 into its target type and into an atomically written .qlm file.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "convert/channel_scales.hpp"
#include "convert/mixed_recipe.hpp"
#include "convert/sensitivity.hpp"
#include "convert/tokenizer_source.hpp"
#include "qlm/config.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/convert/hf_config.hpp"
#include "qlm/convert/safetensors.hpp"
#include "qlm/detail/half.hpp"
#include "qlm/format/file_writer.hpp"
#include "qlm/format/model_config.hpp"
#include "qlm/format/tensor_names.hpp"
#include "qlm/quant/importance.hpp"
#include "qlm/quant/quantize.hpp"
#include "qlm/version.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

// Checks that the checkpoint holds exactly the tensors the config needs, with the right shapes.
void validate_tensors(const safetensors::Checkpoint& ckpt, const ModelConfig& config,
                      const std::filesystem::path& dir, ConvertReport& report) {
  const std::vector<ExpectedTensor> specs = expected_tensors(config);
  std::set<std::string_view> expected;
  std::set<std::string> fused;
  for (const auto& e : specs) {
    // A fused tensor (phi3's qkv_proj, gate_up_proj) stands for the matrices it holds.
    const auto source = fused_source(config, e.name);
    const std::string& name = source ? *fused.insert(source->name).first : e.name;
    std::vector<std::uint64_t> shape = e.shape;
    if (source) shape[0] = source->fused_rows;
    expected.insert(name);
    const auto* t = ckpt.find(name);
    if (t == nullptr) {
      fail(ErrorCode::Format, "{}: missing tensor '{}' (required by config.json)", dir.string(),
           name);
    }
    if (t->shape != shape) {
      fail(ErrorCode::Format, "{}: tensor '{}' has shape {} but config.json implies {}", t->file,
           name, fmt::join(t->shape, "x"), fmt::join(shape, "x"));
    }
  }
  for (const auto& t : ckpt.tensors()) {
    if (expected.count(t.name)) continue;
    if (t.name == "lm_head.weight" && config.tie_word_embeddings) {
      report.notes.push_back("lm_head.weight ignored: tie_word_embeddings is true");
      continue;
    }
    if (t.name.ends_with("rotary_emb.inv_freq")) continue;  // a derived buffer, recomputed
    fail(ErrorCode::Format, "{}: unexpected tensor '{}' for architecture {}", t.file, t.name,
         to_string(config.arch));
  }
  if (config.tie_word_embeddings) {
    report.notes.push_back("tied embeddings: the LM head reads model.embed_tokens.weight");
  }
}

// Elements per task of the element-wise passes over a tensor: 1 MiB of f32, enough to hide a
// task's cost, and a fixed cut so results never depend on the pool.
constexpr std::size_t kChunk = std::size_t{1} << 18;

// Calls f(begin, end) for consecutive chunks of [0, n) on `pool` (null: this thread).
template <class F>
void for_each_chunk(ThreadPool* pool, std::size_t n, const F& f) {
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  auto task = [&](std::size_t c) { f(c * kChunk, std::min(n, (c + 1) * kChunk)); };
  if (pool == nullptr || chunks <= 1) {
    for (std::size_t c = 0; c < chunks; ++c) task(c);
  } else {
    pool->parallel_for(chunks, task);
  }
}

// Reads a source tensor as f32, refusing non-finite values (they would poison every scale). The
// conversion is element-wise, so chunks run in parallel; the first bad element is reported.
std::vector<float> load_f32(const safetensors::Tensor& t, ThreadPool* pool) {
  std::vector<float> x(t.elements());
  const std::size_t elem = t.data.size() / std::max<std::size_t>(x.size(), 1);
  std::vector<std::size_t> bad((x.size() + kChunk - 1) / kChunk, x.size());
  for_each_chunk(pool, x.size(), [&](std::size_t begin, std::size_t end) {
    safetensors::Tensor part;
    part.dtype = t.dtype;
    part.data = t.data.subspan(begin * elem, (end - begin) * elem);
    safetensors::to_f32(part, std::span(x).subspan(begin, end - begin));
    for (std::size_t i = begin; i < end; ++i) {
      if (!std::isfinite(x[i])) {
        bad[begin / kChunk] = i;
        break;
      }
    }
  });
  if (const std::size_t i = *std::min_element(bad.begin(), bad.end()); i < x.size()) {
    fail(ErrorCode::Format, "{}: tensor '{}' has a non-finite value at element {}", t.file, t.name,
         i);
  }
  return x;
}

// The checkpoint tensor that holds expected tensor `name` (a fused one for phi3), for messages.
const safetensors::Tensor* source_tensor(const safetensors::Checkpoint& ckpt,
                                         const ModelConfig& config, const std::string& name) {
  const auto f = fused_source(config, name);
  return ckpt.find(f ? f->name : name);
}

// A source tensor as the .qlm stores it: f32, Gemma's norm offset added (1 + w).
std::vector<float> load_source(const safetensors::Checkpoint& ckpt, const ModelConfig& config,
                               const std::string& name, ThreadPool* pool) {
  if (const auto f = fused_source(config, name)) {  // only the rows this matrix takes
    safetensors::Tensor rows = *ckpt.find(f->name);
    const std::size_t row_bytes = rows.data.size() / f->fused_rows;
    rows.shape[0] = f->rows;
    rows.data = rows.data.subspan(f->row0 * row_bytes, f->rows * row_bytes);
    return load_f32(rows, pool);
  }
  std::vector<float> x = load_f32(*ckpt.find(name), pool);
  if (gemma_norm(config, name)) {
    for (float& v : x) v += 1.0f;
  }
  return x;
}

// The largest magnitude in x (max is exact, so any chunking gives the same value).
float max_abs(std::span<const float> x, ThreadPool* pool) {
  std::vector<float> part((x.size() + kChunk - 1) / kChunk, 0.0f);
  for_each_chunk(pool, x.size(), [&](std::size_t begin, std::size_t end) {
    float m = 0.0f;
    for (std::size_t i = begin; i < end; ++i) m = std::max(m, std::fabs(x[i]));
    part[begin / kChunk] = m;
  });
  return part.empty() ? 0.0f : *std::max_element(part.begin(), part.end());
}

// Encodes x (the rows x k values of tensor t, or of a band of its rows) at `type` into out.
void encode(DType type, const safetensors::Tensor& t, std::span<const float> x, std::uint64_t rows,
            std::uint64_t k, const quant::QuantizeOptions& q, std::span<std::uint8_t> out) {
  switch (type) {
    case DType::F32:
      std::memcpy(out.data(), x.data(), x.size() * 4);
      return;
    case DType::F16:
    case DType::BF16:
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (type == DType::F16 && std::fabs(x[i]) > 65504.0f) {
          fail(ErrorCode::Unsupported, "{}: tensor '{}' value {} at element {} overflows f16",
               t.file, t.name, x[i], i);
        }
        const std::uint16_t h =
            type == DType::F16 ? detail::f32_to_f16(x[i]) : detail::f32_to_bf16(x[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      return;
    case DType::Q8:
    case DType::Q4:
    case DType::Q4NL:
    case DType::Q5: {
      const float amax = max_abs(x, q.pool);
      if (amax / quant::max_level(type) > 65504.0f) {
        fail(ErrorCode::Unsupported, "{}: tensor '{}' has values up to {}, beyond a {} scale",
             t.file, t.name, amax, to_string(type));
      }
      quant::quantize_matrix(type, x, rows, k, out, q);
      return;
    }
  }
}

std::string recipe_text(const ConvertOptions& o, const Importance* imp) {
  std::string promoted;
  for (DType t : o.mixed_promotions) promoted += fmt::format(" or {}", to_string(t));
  std::string text = o.recipe == Recipe::Mixed
                         ? fmt::format("mixed: 2-D weights {}{} within {:.2f} bits per weight",
                                       to_string(o.type), promoted, o.max_bits_per_weight)
                         : fmt::format("uniform: 2-D weights {}", to_string(o.type));
  if (o.recipe == Recipe::Mixed && o.mixed_bands > 1) {
    text += fmt::format(", in up to {} bands of rows per matrix", o.mixed_bands);
  }
  text += ", 1-D tensors f32";
  if (o.recipe == Recipe::Mixed || is_quantized(o.type)) {
    text += o.scale_method == quant::ScaleMethod::Fit ? "; scales fitted" : "; scales rtn";
    if (imp) text += fmt::format(", weighted by importance over {} tokens", imp->tokens());
  }
  return text;
}

format::Metadata build_metadata(const ConvertOptions& o, const ModelConfig& config,
                                const safetensors::Checkpoint& ckpt, const Importance* imp) {
  format::Metadata meta;
  store_config(config, meta);
  meta.set("qlm.quantization.type",
           std::string(o.recipe == Recipe::Mixed ? "mixed" : to_string(o.type)));
  meta.set("qlm.quantization.recipe", recipe_text(o, imp));
  auto dir = std::filesystem::absolute(o.input_dir);
  if (!dir.has_filename()) dir = dir.parent_path();  // "model/" as tab completion writes it
  meta.set("qlm.source.name", dir.filename().string());
  meta.set("qlm.source.files", ckpt.description());
  meta.set("qlm.converter", std::string("qlm-convert ") + QLM_VERSION_STRING);
  return meta;
}

// The importance of `name`'s input columns, checked against its width; empty without a file.
std::span<const float> importance_of(const Importance* imp, const ConvertOptions& o,
                                     const ExpectedTensor& e) {
  if (imp == nullptr || !e.matrix) return {};
  const auto v = imp->find(e.name);
  if (v.empty() && e.name == "model.embed_tokens.weight") return {};  // a lookup table unless tied
  if (v.empty()) {
    fail(ErrorCode::Format, "{}: no statistics for tensor '{}' (made for another model?)",
         o.importance.string(), e.name);
  }
  if (v.size() != e.shape[1]) {
    fail(ErrorCode::Format, "{}: tensor '{}' has {} columns but the importance file has {}",
         o.importance.string(), e.name, e.shape[1], v.size());
  }
  return v;
}

// What every tensor goes through before encoding: channel scales (with an importance file and a
// quantized target), and the importance its quantizer weighs errors by.
struct Preparation {
  const ConvertOptions& o;
  const ModelConfig& config;
  const safetensors::Checkpoint& ckpt;
  const Importance* imp = nullptr;
  std::optional<detail::ChannelScales> scales;
  std::map<std::string, std::string> input_of;  // matrix -> first matrix reading its input

  std::vector<float> load(const ExpectedTensor& e) const {
    std::vector<float> x = load_source(ckpt, config, e.name, o.pool.get());
    if (scales) scales->apply(e.name, x, e.shape);
    return x;
  }
  std::span<const float> importance(const ExpectedTensor& e) const {
    if (scales) {
      if (auto it = scales->importance.find(e.name); it != scales->importance.end()) {
        return it->second;
      }
    }
    return importance_of(imp, o, e);
  }
  // E[x x^T] of e's input (in the scaled coordinates, H_ij / (s_i s_j)) for error-feedback
  // quantization; empty when the importance file does not hold it.
  std::vector<float> hessian(const ExpectedTensor& e) const {
    const auto it = input_of.find(e.name);
    if (!o.error_feedback || imp == nullptr || it == input_of.end()) return {};
    const std::span<const float> m = imp->second_moment(it->second);
    const std::size_t k = e.shape[1];
    if (m.size() != k * k) return {};
    std::vector<float> h(m.begin(), m.end());
    if (scales) {
      if (auto s = scales->columns.find(e.name); s != scales->columns.end()) {
        for (std::size_t i = 0; i < k; ++i) {
          for (std::size_t j = 0; j < k; ++j) h[i * k + j] /= s->second[i] * s->second[j];
        }
      }
    }
    return h;
  }
};

Preparation prepare(const ConvertOptions& o, const ModelConfig& config,
                    const safetensors::Checkpoint& ckpt, const Importance* imp,
                    ConvertReport& report) {
  Preparation prep{o, config, ckpt, imp, std::nullopt, {}};
  for (std::uint32_t l = 0; l < config.n_layers; ++l) {
    for (MatrixInput in : {MatrixInput::Attention, MatrixInput::AttentionOutput, MatrixInput::Mlp,
                           MatrixInput::MlpHidden, MatrixInput::Head}) {
      const std::vector<std::string> names = matrices_reading(config, in, l);
      for (const auto& n : names) prep.input_of[n] = names.front();
    }
  }
  if (imp == nullptr || !o.channel_scaling) return prep;
  for (const auto& e : expected_tensors(config)) (void)importance_of(imp, o, e);  // validate
  // Float targets get scales too (chosen for q4): the model is the same up to rounding.
  const DType target = is_quantized(o.type) ? o.type : DType::Q4;
  auto loader = [&](const std::string& name) {
    return load_source(ckpt, config, name, o.pool.get());
  };
  prep.scales =
      detail::plan_channel_scales(config, loader, *imp, target, o.scale_method, o.pool.get());
  for (const auto& n : prep.scales->notes) report.notes.push_back("channel scales: " + n);
  return prep;
}

using Layouts = std::map<std::string, detail::MatrixLayout>;

// Every tensor whole: matrices at `type` (plus `overrides`), vectors f32.
Layouts uniform_layouts(const ModelConfig& config, DType type,
                        const std::map<std::string, DType>& overrides = {}) {
  Layouts layouts;
  for (const auto& e : expected_tensors(config)) {
    const auto it = overrides.find(e.name);
    const DType t = it != overrides.end() ? it->second : e.matrix ? type : DType::F32;
    layouts[e.name] = {{0, e.shape[0], t}};
  }
  return layouts;
}

// Each tensor's bands and types: uniform, or as the mixed recipe decides (its reasons go to the
// report).
Layouts matrix_layouts(const ConvertOptions& o, const ModelConfig& config, const Preparation& prep,
                       const detail::ProbeWriter& write_probe, ConvertReport& report) {
  const safetensors::Checkpoint& ckpt = prep.ckpt;
  if (o.recipe == Recipe::Uniform) return uniform_layouts(config, o.type);
  Layouts layouts;
  if (!(o.max_bits_per_weight > 0.0)) {
    fail(ErrorCode::InvalidArgument, "mixed recipe: --max-bpw must be positive");
  }
  std::vector<detail::MixedCandidate> candidates;
  std::uint64_t fixed_bytes = 0, fixed_weights = 0;
  const std::vector<ExpectedTensor> expected = expected_tensors(config);
  for (const auto& e : expected) {
    const safetensors::Tensor* src = source_tensor(ckpt, config, e.name);
    if (!e.matrix) {
      layouts[e.name] = {{0, e.shape[0], DType::F32}};
      fixed_bytes += *tensor_bytes(DType::F32, e.shape);
      fixed_weights += src->elements();
      continue;
    }
    candidates.push_back({e.name, e.shape[0], e.shape[1], [&prep, &e] { return prep.load(e); },
                          prep.importance(e), [&prep, &e] { return prep.hessian(e); }});
  }
  detail::Sensitivity measured;
  if (!o.calibration.empty()) {
    std::uint64_t weights = fixed_weights;
    std::vector<std::string> names;
    for (const auto& c : candidates) {
      weights += c.rows * c.k;
      names.push_back(c.name);
    }
    if (weights > detail::kSensitivityMaxWeights) {
      fail(ErrorCode::InvalidArgument,
           "mixed recipe: measuring sensitivity on a calibration text converts the model once "
           "per matrix; {} parameters is over the limit of {}",
           weights, detail::kSensitivityMaxWeights);
    }
    // q8's KL is two orders of magnitude below 4-bit's: not worth a model write per matrix.
    std::vector<DType> probed{o.type};
    for (DType t : o.mixed_promotions) {
      if (t != DType::Q8 && t != o.type) probed.push_back(t);
    }
    measured = detail::measure_sensitivity(o.calibration, o.output, names, probed, write_probe);
  }
  // A token row's error matters as often as the token occurs, as input (embedding) or as a likely
  // next token (LM head): counted on the calibration text, else read from the importance file.
  // Add-half keeps unseen tokens from counting for nothing.
  std::vector<double> counts = measured.token_counts;
  if (counts.empty() && prep.imp) {
    counts.assign(prep.imp->token_counts().begin(), prep.imp->token_counts().end());
  }
  for (auto& c : candidates) {
    if (counts.empty() || (c.name != "model.embed_tokens.weight" && c.name != "lm_head.weight")) {
      continue;
    }
    c.row_weights = counts;
    c.row_weights.resize(c.rows, 0.0);
    for (double& w : c.row_weights) w += 0.5;
  }
  const auto plan = detail::plan_mixed(candidates, fixed_bytes, fixed_weights,
                                       o.max_bits_per_weight, o.type, o.mixed_promotions,
                                       o.scale_method, measured.kl, o.mixed_bands, o.pool.get());
  layouts.insert(plan.layouts.begin(), plan.layouts.end());
  report.choices = plan.reasons;
  return layouts;
}

// Encodes every tensor (or band of a matrix's rows) at its type from `layouts` into `output`,
// adding sizes to `report`.
void write_model(const ConvertOptions& o, const ModelConfig& config, const Preparation& prep,
                 const format::Metadata& meta, const Layouts& layouts,
                 const std::filesystem::path& output, ConvertReport& report) {
  std::vector<format::PendingTensor> pending;
  std::vector<std::string> padded;
  // The writer produces a matrix's bands one after another: load it (and its channel scales) once
  // for all of them, and drop it with the last, so a conversion still holds one matrix at a time.
  struct Loaded {
    const ExpectedTensor* tensor = nullptr;
    std::vector<float> x;
  };
  auto loaded = std::make_shared<Loaded>();
  // GPTQ's factor of the last input's E[x x^T], kept across matrices: q, k and v (gate and up,
  // and every band of one matrix) read the same input, and the factor is O(k^3) to compute.
  struct Factor {
    std::vector<float> h;
    std::vector<double> u;
  };
  auto factor = std::make_shared<Factor>();
  const std::vector<ExpectedTensor> expected = expected_tensors(config);
  for (const auto& e : expected) {
    const safetensors::Tensor* src = source_tensor(prep.ckpt, config, e.name);
    const detail::MatrixLayout& layout = layouts.at(e.name);
    const std::uint64_t k = e.shape.size() == 2 ? e.shape[1] : 1;
    for (const detail::TypedBand& b : layout) {
      const DType type = b.type;
      const std::string name = layout.size() == 1 ? e.name : band_tensor(e.name, {b.row0, b.row1});
      std::vector<std::uint64_t> shape = e.shape;
      shape[0] = b.row1 - b.row0;
      if (is_quantized(type) && (k % kBlockK != 0 || shape[0] % kRowGroup != 0)) {
        padded.push_back(fmt::format("{} [{}x{}]", name, shape[0], k));
      }
      pending.push_back(
          {name, type, shape,
           [src, type, b, k, loaded, factor, &o, &prep, &e](std::span<std::uint8_t> out) {
             return detail::capture([&] {
               const std::vector<float> h =
                   is_quantized(type) ? prep.hessian(e) : std::vector<float>{};
               if (!h.empty() && h != factor->h) {
                 factor->u = quant::gptq_factor(h, k);
                 factor->h = h;
               }
               if (loaded->tensor != &e) *loaded = {&e, prep.load(e)};
               const std::span<const float> rows(loaded->x.data() + b.row0 * k,
                                                 (b.row1 - b.row0) * k);
               encode(type, *src, rows, b.row1 - b.row0, k,
                      {o.scale_method, prep.importance(e), h, o.pool.get(),
                       h.empty() ? std::span<const double>{} : factor->u},
                      out);
               if (b.row1 == e.shape[0]) *loaded = {};
             });
           }});
      report.weight_bytes += *tensor_bytes(type, shape);
    }
    // The expected tensor's own elements: a part of a fused source (phi3's qkv_proj) is not the
    // whole source.
    std::uint64_t elements = 1;
    for (const std::uint64_t dim : e.shape) elements *= dim;
    report.weights += elements;
  }
  if (!padded.empty()) {
    report.notes.push_back(fmt::format(
        "{} matrices padded with zero weights to whole 16x32 tiles (docs/format.md), e.g. {}",
        padded.size(), padded.front()));
  }
  report.tensors = pending.size();
  report.file_bytes = detail::unwrap(format::write_qlm_file(output, meta, pending, o.on_progress));
}

}  // namespace

namespace {

// The output may be a new file or a regular file to replace, but neither a special file (a
// device, a FIFO: replacing it is never what was meant) nor one of the checkpoint's own files.
void check_output(const std::filesystem::path& input_dir, const std::filesystem::path& output) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(output, ec);
  if (!fs::exists(st)) return;
  if (!fs::is_regular_file(st)) {
    fail(ErrorCode::InvalidArgument, "{}: the output exists and is not a regular file",
         output.string());
  }
  for (const auto& entry : fs::directory_iterator(input_dir, ec)) {
    if (fs::equivalent(entry.path(), output, ec)) {
      fail(ErrorCode::InvalidArgument, "{}: the output would overwrite the checkpoint's own {}",
           output.string(), entry.path().filename().string());
    }
  }
}

}  // namespace

Result<ConvertReport> convert_checkpoint(const ConvertOptions& options) {
  return detail::capture([&] {
    ConvertOptions o = options;
    if (!o.pool) o.pool = make_spin_pool();
    check_output(o.input_dir, o.output);
    ConvertReport report;
    const ModelConfig config = detail::unwrap(read_hf_config(o.input_dir));
    const auto ckpt = detail::unwrap(safetensors::Checkpoint::open(o.input_dir));
    validate_tensors(ckpt, config, o.input_dir, report);
    std::optional<Importance> importance;
    if (!o.importance.empty()) importance = detail::unwrap(Importance::load(o.importance));
    const Importance* imp = importance ? &*importance : nullptr;
    format::Metadata meta = build_metadata(o, config, ckpt, imp);
    add_tokenizer(o.input_dir, o.chat_template, config, meta, report);
    const Preparation prep = prepare(o, config, ckpt, imp, report);
    // For measured sensitivity: the model in f32 with at most one matrix quantized.
    auto write_probe = [&](const std::string& quantized, DType type,
                           const std::filesystem::path& out) {
      std::map<std::string, DType> overrides;
      if (!quantized.empty()) overrides[quantized] = type;
      ConvertOptions quiet = o;
      quiet.on_progress = {};
      ConvertReport ignored;
      write_model(quiet, config, prep, meta, uniform_layouts(config, DType::F32, overrides), out,
                  ignored);
    };
    const Layouts layouts = matrix_layouts(o, config, prep, write_probe, report);
    write_model(o, config, prep, meta, layouts, o.output, report);
    return report;
  });
}

}  // namespace qlm
