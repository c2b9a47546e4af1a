// convert_checkpoint: validate the checkpoint against the architecture's tensor list, then stream
// each tensor through f32 into its target type and into an atomically written .qlm file.
#include <cmath>
#include <set>

#include "convert/tokenizer_source.hpp"
#include "qlm/config.hpp"
#include "qlm/convert.hpp"
#include "qlm/detail/half.hpp"
#include "qlm/format/file_writer.hpp"
#include "qlm/quant/quantize.hpp"
#include "qlm/safetensors.hpp"
#include "qlm/tensor_names.hpp"
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
  for (const auto& e : specs) {
    expected.insert(e.name);
    const auto* t = ckpt.find(e.name);
    if (t == nullptr) {
      fail(ErrorCode::Format, "{}: missing tensor '{}' (required by config.json)", dir.string(),
           e.name);
    }
    if (t->shape != e.shape) {
      fail(ErrorCode::Format, "{}: tensor '{}' has shape {} but config.json implies {}", t->file,
           e.name, fmt::join(t->shape, "x"), fmt::join(e.shape, "x"));
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

// Reads a source tensor as f32, refusing non-finite values (they would poison every scale).
std::vector<float> load_f32(const safetensors::Tensor& t) {
  std::vector<float> x(t.elements());
  safetensors::to_f32(t, x);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      fail(ErrorCode::Format, "{}: tensor '{}' has a non-finite value at element {}", t.file,
           t.name, i);
    }
  }
  return x;
}

void encode(DType type, const safetensors::Tensor& t, std::span<std::uint8_t> out) {
  const std::vector<float> x = load_f32(t);
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
    case DType::Q4: {
      float amax = 0.0f;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      if (amax / quant::max_level(type) > 65504.0f) {
        fail(ErrorCode::Unsupported, "{}: tensor '{}' has values up to {}, beyond a {} scale",
             t.file, t.name, amax, to_string(type));
      }
      quant::quantize_matrix(type, x, t.shape[0], t.shape[1], out);
      return;
    }
  }
}

format::Metadata build_metadata(const ConvertOptions& o, const ModelConfig& config,
                                const safetensors::Checkpoint& ckpt) {
  format::Metadata meta;
  store_config(config, meta);
  meta.set("qlm.quantization.type", std::string(to_string(o.type)));
  meta.set("qlm.quantization.recipe", std::string("uniform: 2-D weights ") +
                                          std::string(to_string(o.type)) + ", 1-D tensors f32");
  auto dir = std::filesystem::absolute(o.input_dir);
  if (!dir.has_filename()) dir = dir.parent_path();  // "model/" as tab completion writes it
  meta.set("qlm.source.name", dir.filename().string());
  meta.set("qlm.source.files", ckpt.description());
  meta.set("qlm.converter", std::string("qlm-convert ") + QLM_VERSION_STRING);
  return meta;
}

}  // namespace

Result<ConvertReport> convert_checkpoint(const ConvertOptions& o) {
  return detail::capture([&] {
    ConvertReport report;
    const ModelConfig config = detail::unwrap(read_hf_config(o.input_dir));
    const auto ckpt = detail::unwrap(safetensors::Checkpoint::open(o.input_dir));
    validate_tensors(ckpt, config, o.input_dir, report);
    format::Metadata meta = build_metadata(o, config, ckpt);
    add_tokenizer(o.input_dir, config, meta, report);

    std::vector<format::PendingTensor> pending;
    std::vector<std::string> padded;
    for (const auto& e : expected_tensors(config)) {
      const safetensors::Tensor* src = ckpt.find(e.name);
      const DType type = e.matrix ? o.type : DType::F32;
      if (is_quantized(type) && (e.shape[1] % kBlockK != 0 || e.shape[0] % kRowGroup != 0)) {
        padded.push_back(fmt::format("{} [{}x{}]", e.name, e.shape[0], e.shape[1]));
      }
      pending.push_back({e.name, type, e.shape, [src, type](std::span<std::uint8_t> out) {
                           return detail::capture([&] { encode(type, *src, out); });
                         }});
      report.weights += src->elements();
      report.weight_bytes += *tensor_bytes(type, e.shape);
    }
    if (!padded.empty()) {
      report.notes.push_back(fmt::format(
          "{} matrices padded with zero weights to whole 16x32 tiles (docs/format.md), e.g. {}",
          padded.size(), padded.front()));
    }
    report.tensors = pending.size();
    report.file_bytes =
        detail::unwrap(format::write_qlm_file(o.output, meta, pending, o.on_progress));
    return report;
  });
}

}  // namespace qlm
