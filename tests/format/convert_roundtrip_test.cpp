// Converts the real stories260K checkpoint to every .qlm type and checks the result against the
// safetensors source: config, tensor list, values within the quantizers' bounds, zero-copy views.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <map>

#include "qlm/config.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/convert/hf_config.hpp"
#include "qlm/detail/half.hpp"
#include "qlm/format/model_config.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/format/tensor_names.hpp"
#include "qlm/quant/quantize.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/files.hpp"
#include "support/quant_bounds.hpp"
#include "support/temp_dir.hpp"

namespace {

using qlm::DType;
using qlm::format::ModelFile;
using qlm::format::TensorInfo;
using qlm::safetensors::SourceType;
using qlm::test::HostTensor;
using ModelPtr = std::shared_ptr<const ModelFile>;

qlm::ConvertReport convert(const std::filesystem::path& in, const std::filesystem::path& out,
                           DType type) {
  // Round-to-nearest scales: the value checks below are bounds derived from its definition (the
  // default fitted scales are checked against it in tests/quant).
  qlm::ConvertOptions options{in, out, type, {}};
  options.scale_method = qlm::quant::ScaleMethod::Rtn;
  auto r = qlm::convert_checkpoint(options);
  INFO("converting " << in << " to " << qlm::to_string(type));
  if (!r) FAIL(r.error().message);
  return std::move(r).value();
}

ModelPtr open_verified(const std::filesystem::path& path) {
  auto f = ModelFile::open(path, {.verify_checksums = true, .populate = false});
  if (!f) FAIL(f.error().message);
  return std::move(f).value();
}

// Logical rows and row length of a tensor as dequantize_row sees it.
std::pair<std::size_t, std::size_t> rows_k(const TensorInfo& t) {
  return t.shape.size() == 2 ? std::pair{t.shape[0], t.shape[1]}
                             : std::pair{std::size_t{1}, t.shape[0]};
}

std::vector<float> dequantize(const ModelFile& f, const TensorInfo& t) {
  const auto [rows, k] = rows_k(t);
  std::vector<float> out(rows * k);
  for (std::size_t r = 0; r < rows; ++r) {
    qlm::quant::dequantize_row(t.dtype, f.data(t), rows, k, r, std::span(out).subspan(r * k, k));
  }
  return out;
}

std::size_t bit_mismatches(std::span<const float> a, std::span<const float> b) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  }
  return n;
}

void check_config_equal(const qlm::ModelConfig& a, const qlm::ModelConfig& b) {
  CHECK(a.arch == b.arch);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.hidden_size == b.hidden_size);
  CHECK(a.intermediate_size == b.intermediate_size);
  CHECK(a.n_layers == b.n_layers);
  CHECK(a.n_heads == b.n_heads);
  CHECK(a.n_kv_heads == b.n_kv_heads);
  CHECK(a.head_dim == b.head_dim);
  CHECK(a.rope_theta == b.rope_theta);
  CHECK(a.rope_scaling.type == b.rope_scaling.type);
  CHECK(a.rope_scaling.factor == b.rope_scaling.factor);
  CHECK(a.rope_scaling.low_freq_factor == b.rope_scaling.low_freq_factor);
  CHECK(a.rope_scaling.high_freq_factor == b.rope_scaling.high_freq_factor);
  CHECK(a.rope_scaling.original_max_position == b.rope_scaling.original_max_position);
  CHECK(a.rms_norm_eps == b.rms_norm_eps);
  CHECK(a.tie_word_embeddings == b.tie_word_embeddings);
  CHECK(a.attention_bias == b.attention_bias);
  CHECK(a.sliding_window == b.sliding_window);
  CHECK(a.max_position_embeddings == b.max_position_embeddings);
  CHECK(a.bos_id == b.bos_id);
  CHECK(a.eos_id == b.eos_id);
}

// (b) exactly the expected tensors, with the expected shapes and types.
void check_tensor_list(const ModelFile& f, const qlm::ModelConfig& config, DType type) {
  const auto expected = qlm::expected_tensors(config);
  CHECK(f.tensors().size() == expected.size());
  CHECK_FALSE(f.find("lm_head.weight").has_value());
  for (const auto& e : expected) {
    INFO("tensor " << e.name);
    const auto view = f.find(e.name);
    REQUIRE(view.has_value());
    CHECK(view->info->shape == e.shape);
    CHECK(view->info->dtype == (e.shape.size() == 2 ? type : DType::F32));
    CHECK(e.matrix == (e.shape.size() == 2));
    CHECK(view->info->size == *qlm::tensor_bytes(view->info->dtype, e.shape));
  }
}

// (c) every row dequantized matches the original: exactly, rounded, or within the block bound.
void check_values(const ModelFile& f, const std::vector<HostTensor>& originals, DType type) {
  for (const auto& orig : originals) {
    INFO("tensor " << orig.name);
    const auto view = f.find(orig.name);
    REQUIRE(view.has_value());
    const TensorInfo& t = *view->info;
    const std::vector<float> got = dequantize(f, t);
    REQUIRE(got.size() == orig.values.size());
    if (!qlm::is_quantized(t.dtype)) {
      std::vector<float> want = orig.values;
      if (t.dtype != DType::F32) {
        const auto st = t.dtype == DType::F16 ? SourceType::F16 : SourceType::BF16;
        for (float& v : want) v = qlm::test::round_to(st, v);
      }
      CHECK(bit_mismatches(got, want) == 0);
      continue;
    }
    const auto [rows, k] = rows_k(t);
    qlm::test::BoundCheck bc;
    for (std::size_t r = 0; r < rows; ++r) {
      qlm::test::check_quantized_row(type, std::span(orig.values).subspan(r * k, k),
                                     std::span(got).subspan(r * k, k), bc);
    }
    INFO("relative RMS error " << bc.relative_rms() << ", worst error/bound " << bc.worst
                               << ", first bad column " << bc.first_bad);
    CHECK(bc.violations == 0);
    CHECK(bc.values == orig.values.size());
    CHECK(bc.relative_rms() < (type == DType::Q8 ? 0.01 : 0.12));
    CHECK(bc.relative_rms() > 0.0);
  }
}

// (d) provenance and recipe keys.
void check_metadata(const ModelFile& f, DType type) {
  const auto& meta = f.metadata();
  std::size_t model_keys = 0;
  for (const auto& [key, value] : meta.entries()) model_keys += key.starts_with("model.");
  CHECK(model_keys >= 19);
  const auto* arch = meta.find<std::string>("model.architecture");
  REQUIRE(arch != nullptr);
  CHECK(*arch == "llama");
  const auto* qtype = meta.find<std::string>("qlm.quantization.type");
  REQUIRE(qtype != nullptr);
  CHECK(*qtype == qlm::to_string(type));
  const auto* name = meta.find<std::string>("qlm.source.name");
  REQUIRE(name != nullptr);
  CHECK(*name == "stories260K");
  const auto* files = meta.find<std::string>("qlm.source.files");
  REQUIRE(files != nullptr);
  CHECK(qlm::test::contains(*files, "model.safetensors"));
}

// (e) the report describes the file that was written.
void check_report(const qlm::ConvertReport& report, const ModelFile& f,
                  const std::filesystem::path& path, DType type) {
  CHECK(report.file_bytes == std::filesystem::file_size(path));
  CHECK(report.file_bytes == f.file_size());
  CHECK(report.tensors == f.tensors().size());
  std::uint64_t weights = 0, bytes = 0;
  for (const auto& t : f.tensors()) {
    weights += t.elements();
    bytes += t.size;
  }
  CHECK(report.weights == weights);
  CHECK(report.weight_bytes == bytes);
  const double bpw = report.bits_per_weight();
  INFO("bits per weight " << bpw);
  const std::map<DType, std::pair<double, double>> range{{DType::F32, {32.0, 32.0}},
                                                         {DType::F16, {16.0, 16.5}},
                                                         {DType::BF16, {16.0, 16.5}},
                                                         {DType::Q8, {8.5, 9.5}},
                                                         {DType::Q4, {4.5, 5.5}}};
  CHECK(bpw >= range.at(type).first);
  CHECK(bpw <= range.at(type).second);
}

// (f) tensor views point into one mapping of the file, at the offsets the table gives.
void check_zero_copy(const ModelFile& f, const std::filesystem::path& path) {
  const auto bytes = qlm::test::read_bytes(path);
  REQUIRE(bytes.size() == f.file_size());
  std::vector<const TensorInfo*> sorted;
  for (const auto& t : f.tensors()) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  const std::uint8_t* first = f.data(*sorted.front()).data();
  for (const TensorInfo* t : sorted) {
    INFO("tensor " << t->name);
    const auto span = f.data(*t);
    REQUIRE(span.size() == t->size);
    REQUIRE(f.header().data_offset + t->offset + t->size <= bytes.size());
    CHECK(std::memcmp(span.data(), bytes.data() + f.header().data_offset + t->offset, t->size) ==
          0);
    CHECK(static_cast<std::uint64_t>(span.data() - first) == t->offset - sorted.front()->offset);
    CHECK(reinterpret_cast<std::uintptr_t>(span.data()) % qlm::format::kTensorAlignment == 0);
    CHECK(f.find(t->name)->data.data() == span.data());
    CHECK(qlm::format::checksum(span) == t->checksum);
  }
}

std::map<std::string, std::uint64_t> tensor_checksums(const ModelFile& f) {
  std::map<std::string, std::uint64_t> sums;
  for (const auto& t : f.tensors()) sums[t.name] = t.checksum;
  return sums;
}

}  // namespace

TEST_CASE("stories260K converts to every type and matches the source", "[format][convert]") {
  const DType type = GENERATE(DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q4);
  INFO("type " << qlm::to_string(type));
  const qlm::test::TempDir tmp;
  const auto out = tmp / "stories.qlm";
  const auto report = convert(qlm::test::stories_dir(), out, type);
  const ModelPtr f = open_verified(out);
  CHECK(f->header().tensor_count == f->tensors().size());

  const auto hf = qlm::read_hf_config(qlm::test::stories_dir());
  REQUIRE(hf.ok());
  const auto loaded = qlm::load_config(f->metadata(), f->path());
  REQUIRE(loaded.ok());
  check_config_equal(*loaded, *hf);
  CHECK(hf->intermediate_size % qlm::kBlockK != 0);  // the awkward K this model exercises

  check_tensor_list(*f, *hf, type);
  check_values(*f, qlm::test::load_tensors(qlm::test::stories_dir()), type);
  check_metadata(*f, type);
  check_report(report, *f, out, type);
  check_zero_copy(*f, out);
}

TEST_CASE("sharded F32 input converts exactly like the single file", "[format][convert]") {
  const qlm::test::TempDir tmp;
  const auto sharded = tmp / "sharded";
  qlm::test::write_checkpoint_copy(qlm::test::stories_dir(), sharded, SourceType::F32, 3);
  REQUIRE(std::filesystem::exists(sharded / "model.safetensors.index.json"));
  REQUIRE(std::filesystem::exists(sharded / "model-00003-of-00003.safetensors"));
  REQUIRE_FALSE(std::filesystem::exists(sharded / "model.safetensors"));

  for (DType type : {DType::F32, DType::Q4}) {
    INFO("type " << qlm::to_string(type));
    const auto a = tmp / ("single-" + std::string(qlm::to_string(type)) + ".qlm");
    const auto b = tmp / ("sharded-" + std::string(qlm::to_string(type)) + ".qlm");
    convert(qlm::test::stories_dir(), a, type);
    convert(sharded, b, type);
    const ModelPtr fa = open_verified(a), fb = open_verified(b);
    CHECK(tensor_checksums(*fa) == tensor_checksums(*fb));
    CHECK(fa->tensors().size() == fb->tensors().size());
    for (const auto& t : fa->tensors()) {
      INFO("tensor " << t.name);
      const auto v = fb->find(t.name);
      REQUIRE(v.has_value());
      CHECK(v->info->shape == t.shape);
      CHECK(v->info->dtype == t.dtype);
      CHECK(std::ranges::equal(v->data, fa->data(t)));
    }
    const auto* files = fb->metadata().find<std::string>("qlm.source.files");
    REQUIRE(files != nullptr);
    CHECK(qlm::test::contains(*files, "3"));
  }
  // f32 output of an f32 source is the source, bit for bit.
  const ModelPtr f = open_verified(tmp / "sharded-f32.qlm");
  for (const auto& orig : qlm::test::load_tensors(qlm::test::stories_dir())) {
    INFO("tensor " << orig.name);
    CHECK(bit_mismatches(dequantize(*f, *f->find(orig.name)->info), orig.values) == 0);
  }
}

TEST_CASE("F16 and BF16 inputs convert to the source rounded to them", "[format][convert]") {
  const auto originals = qlm::test::load_tensors(qlm::test::stories_dir());
  for (SourceType st : {SourceType::F16, SourceType::BF16}) {
    INFO("source dtype " << qlm::safetensors::to_string(st));
    const qlm::test::TempDir tmp;
    const auto dir = tmp / "half";
    qlm::test::write_checkpoint_copy(qlm::test::stories_dir(), dir, st, 1);

    convert(dir, tmp / "f32.qlm", DType::F32);
    const ModelPtr f = open_verified(tmp / "f32.qlm");
    for (const auto& orig : originals) {
      INFO("tensor " << orig.name);
      std::vector<float> want = orig.values;
      for (float& v : want) v = qlm::test::round_to(st, v);
      CHECK(bit_mismatches(dequantize(*f, *f->find(orig.name)->info), want) == 0);
    }

    // Same type in and out: the matrices' payloads are the source bytes unchanged.
    const DType same = st == SourceType::F16 ? DType::F16 : DType::BF16;
    convert(dir, tmp / "same.qlm", same);
    const ModelPtr g = open_verified(tmp / "same.qlm");
    for (const auto& orig : originals) {
      if (orig.shape.size() != 2) continue;
      INFO("tensor " << orig.name);
      const auto v = g->find(orig.name);
      REQUIRE(v.has_value());
      CHECK(v->info->dtype == same);
      CHECK(std::ranges::equal(v->data, qlm::test::encode_values(orig.values, st)));
    }
  }
}

TEST_CASE("the source name is recorded even when the input path ends in a slash", "[convert]") {
  // Shell completion writes "models/stories260K/"; the name must still be "stories260K".
  const qlm::test::TempDir tmp;
  const auto input = std::filesystem::path(qlm::test::stories_dir().string() + "/");
  convert(input, tmp / "slash.qlm", DType::Q8);
  const ModelPtr f = open_verified(tmp / "slash.qlm");
  const auto* name = f->metadata().find<std::string>("qlm.source.name");
  REQUIRE(name != nullptr);
  CHECK(*name == "stories260K");
}
