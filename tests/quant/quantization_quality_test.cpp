// The converter's quantization options on the real stories260K model: importance collection and its
// file, channel scales that leave the float model unchanged, fitted scales beating round-to-nearest
// in KL divergence, and the mixed recipe's budget.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include "model/model_helpers.hpp"
#include "model_access.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/eval/perplexity.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/format/tensor_names.hpp"
#include "qlm/quant/importance.hpp"
#include "qlm/session.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

using qlm::DType;
using qlm::test::eval_all_logits;

const char* kText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
    "One day, she saw a big red ball in the park. She ran to the ball and kicked it very high. "
    "Her friend Tom came to play with her. They laughed and played all day long. When the sun "
    "went down, they went home. Lily was tired but happy. She told her mom about the ball. ";

std::vector<std::int32_t> text_tokens(const qlm::Model& model, int repeats) {
  std::string text;
  for (int i = 0; i < repeats; ++i) text += kText;
  return model.tokenizer().encode(text).value();
}

// Mean KL(P_ref || P) over all positions.
double mean_kl(const std::vector<float>& ref, const std::vector<float>& got, std::size_t vocab) {
  double total = 0.0;
  const std::size_t n = ref.size() / vocab;
  for (std::size_t i = 0; i < n; ++i) {
    const float* a = &ref[i * vocab];
    const float* b = &got[i * vocab];
    const double ma = *std::max_element(a, a + vocab), mb = *std::max_element(b, b + vocab);
    double za = 0.0, zb = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) {
      za += std::exp(a[v] - ma);
      zb += std::exp(b[v] - mb);
    }
    const double la = std::log(za) + ma, lb = std::log(zb) + mb;
    for (std::size_t v = 0; v < vocab; ++v) {
      total += std::exp(a[v] - la) * ((a[v] - la) - (b[v] - lb));
    }
  }
  return total / static_cast<double>(n);
}

qlm::ConvertReport convert(const std::filesystem::path& out, DType type,
                           const std::filesystem::path& importance = {},
                           qlm::quant::ScaleMethod method = qlm::quant::ScaleMethod::Fit) {
  qlm::ConvertOptions o{qlm::test::stories_dir(), out, type, {}};
  o.importance = importance;
  o.scale_method = method;
  auto report = qlm::convert_checkpoint(o);
  INFO((report.ok() ? std::string() : report.error().message));
  REQUIRE(report.ok());
  return *report;
}

// Collects importance over the test text with the q8 model and saves it.
std::shared_ptr<qlm::Importance> collect(const qlm::test::TempDir& tmp,
                                         const std::filesystem::path& file) {
  convert(tmp / "calib.qlm", DType::Q8);
  const auto model = qlm::test::open_or_fail(tmp / "calib.qlm");
  auto imp = std::make_shared<qlm::Importance>(model->config());
  eval_all_logits(model, {.threads = 1, .observer = imp}, text_tokens(*model, 2));
  REQUIRE(imp->save(file).ok());
  return imp;
}

}  // namespace

TEST_CASE("importance statistics cover every matrix and survive their file", "[quant][quality]") {
  qlm::test::TempDir tmp;
  const auto imp = collect(tmp, tmp / "imp.qlmi");
  const auto model = qlm::test::open_or_fail(tmp / "calib.qlm");
  const auto& c = model->config();
  CHECK(imp->tokens() == text_tokens(*model, 2).size());
  for (const auto& e : qlm::expected_tensors(c)) {
    if (!e.matrix) continue;
    INFO(e.name);
    const auto v = imp->find(e.name);
    REQUIRE(v.size() == e.shape[1]);  // the tied embedding has the LM head's statistics
    CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x >= 0.0f && std::isfinite(x); }));
    CHECK(*std::max_element(v.begin(), v.end()) > 0.0f);
  }
  // q, k and v read the same input.
  CHECK(std::ranges::equal(imp->find(qlm::layer_tensor(2, "self_attn.q_proj.weight")),
                           imp->find(qlm::layer_tensor(2, "self_attn.v_proj.weight"))));

  auto loaded = qlm::Importance::load(tmp / "imp.qlmi");
  REQUIRE(loaded.ok());
  CHECK(loaded->tokens() == imp->tokens());
  CHECK(loaded->tensors() == imp->tensors());
  for (const auto& name : imp->tensors())
    CHECK(std::ranges::equal(loaded->find(name), imp->find(name)));

  qlm::test::expect_error(qlm::Importance::load(tmp / "calib.qlm"), qlm::ErrorCode::Format,
                          {"calib.qlm", "not an importance file"});
  auto bytes = qlm::test::read_bytes(tmp / "imp.qlmi");
  bytes.resize(bytes.size() - 7);
  qlm::test::write_bytes(tmp / "cut.qlmi", bytes);
  const auto cut = qlm::Importance::load(tmp / "cut.qlmi");
  REQUIRE_FALSE(cut.ok());
  CHECK(qlm::test::contains(cut.error().message, "cut.qlmi"));
}

TEST_CASE("channel scales leave the float model's logits unchanged", "[quant][quality]") {
  qlm::test::TempDir tmp;
  collect(tmp, tmp / "imp.qlmi");
  const auto report = convert(tmp / "scaled.qlm", DType::F32, tmp / "imp.qlmi");
  convert(tmp / "plain.qlm", DType::F32);
  const auto scaled = qlm::test::open_or_fail(tmp / "scaled.qlm");
  const auto plain = qlm::test::open_or_fail(tmp / "plain.qlm");
  // Scales were really folded in: some norm weights changed.
  const auto norm = qlm::layer_tensor(1, "input_layernorm.weight");
  const auto& scaled_file = qlm::detail::model_file(*scaled);
  const auto& plain_file = qlm::detail::model_file(*plain);
  CHECK_FALSE(std::ranges::equal(scaled_file.data(*scaled_file.find(norm)->info),
                                 plain_file.data(*plain_file.find(norm)->info)));
  CHECK(std::ranges::any_of(
      report.notes, [](const std::string& n) { return qlm::test::contains(n, "channel scales"); }));
  const auto ids = text_tokens(*plain, 1);
  const auto a = eval_all_logits(plain, {.threads = 1}, ids);
  const auto b = eval_all_logits(scaled, {.threads = 1}, ids);
  float scale = 0.0f;
  for (float v : a) scale = std::max(scale, std::fabs(v));
  CHECK(qlm::test::max_abs_diff(a, b) <= 1e-4f * scale);
}

TEST_CASE("fitted, importance-weighted 4-bit scales beat round-to-nearest",
          "[quant][quality][heavy]") {
  // Scored on text unlike the calibration text: a fortunes database (scripts/install-deps.sh
  // installs the package), four windows of 256 tokens.
  const std::filesystem::path text = "/usr/share/games/fortunes/wisdom";
  INFO("needs Debian's fortunes package: " << text);
  REQUIRE(std::filesystem::exists(text));
  qlm::test::TempDir tmp;
  collect(tmp, tmp / "imp.qlmi");
  convert(tmp / "f32.qlm", DType::F32);
  convert(tmp / "rtn.qlm", DType::Q4, {}, qlm::quant::ScaleMethod::Rtn);
  convert(tmp / "fit.qlm", DType::Q4);
  convert(tmp / "imp.qlm", DType::Q4, tmp / "imp.qlmi");
  const auto ref = qlm::test::open_or_fail(tmp / "f32.qlm");
  const auto all = ref->tokenizer().encode(qlm::test::read_text(text)).value();
  REQUIRE(all.size() >= 1024);
  const std::size_t vocab = ref->config().vocab_size;
  auto kl = [&](const char* name) {
    const auto model = qlm::test::open_or_fail(tmp / name);
    double sum = 0.0;
    for (std::size_t w = 0; w < 4; ++w) {
      const std::span<const std::int32_t> ids(all.data() + w * 256, 256);
      sum += mean_kl(eval_all_logits(ref, {.threads = 1}, ids),
                     eval_all_logits(model, {.threads = 1}, ids), vocab);
    }
    return sum / 4.0;
  };
  const double rtn = kl("rtn.qlm"), fit = kl("fit.qlm"), imp = kl("imp.qlm");
  INFO("mean KL vs f32: rtn " << rtn << ", fit " << fit << ", fit + importance " << imp);
  CHECK(fit < 0.95 * rtn);
  CHECK(imp < 0.95 * rtn);
  CHECK(rtn < 1.0);  // sanity: the quantized models still predict roughly the same text
}

TEST_CASE("the mixed recipe keeps within its budget and says why", "[quant][quality]") {
  qlm::test::TempDir tmp;
  qlm::ConvertOptions o{qlm::test::stories_dir(), tmp / "mixed.qlm", DType::Q4, {}};
  o.recipe = qlm::Recipe::Mixed;
  o.max_bits_per_weight = 5.0;
  auto report = qlm::convert_checkpoint(o);
  REQUIRE(report.ok());
  CHECK(report->bits_per_weight() <= 5.0);
  CHECK(report->bits_per_weight() > convert(tmp / "q4.qlm", DType::Q4).bits_per_weight());
  auto file = qlm::format::ModelFile::open(tmp / "mixed.qlm");
  REQUIRE(file.ok());
  std::size_t q8 = 0, q5 = 0, q4 = 0;
  std::set<std::string> matrices;  // a matrix may be stored in bands of rows, "name[r0:r1]"
  for (const auto& t : (*file)->tensors()) {
    q8 += t.dtype == DType::Q8;
    q5 += t.dtype == DType::Q5;
    q4 += t.dtype == DType::Q4;
    if (is_quantized(t.dtype)) matrices.insert(t.name.substr(0, t.name.find('[')));
  }
  CHECK(q8 + q5 > 0);
  CHECK(q4 > 0);                                         // all-q5 would be over 5.5 bits per weight
  CHECK(report->choices.size() == matrices.size() + 1);  // one line per matrix and a total
  CHECK(*(*file)->metadata().find<std::string>("qlm.quantization.type") == "mixed");
  CHECK(qlm::test::contains(*(*file)->metadata().find<std::string>("qlm.quantization.recipe"),
                            "mixed: 2-D weights q4 or q5 or q8 within 5.00 bits per weight, in "
                            "up to 16 bands of rows per matrix"));

  o.max_bits_per_weight = 4.0;  // below what all-q4 needs (scales and padding)
  o.output = tmp / "tight.qlm";
  qlm::test::expect_error(qlm::convert_checkpoint(o), qlm::ErrorCode::InvalidArgument,
                          {"4.000", "all-q4"});
  CHECK_FALSE(std::filesystem::exists(tmp / "tight.qlm"));
}

TEST_CASE("an importance file of another shape is refused by name", "[quant][quality]") {
  qlm::test::TempDir tmp;
  qlm::ModelConfig other;
  other.n_layers = 5;
  other.tie_word_embeddings = true;
  qlm::Importance imp(other);
  std::vector<float> x(3 * 10, 1.0f);  // 10 columns where stories has 64
  for (std::uint32_t l = 0; l < 5; ++l) {
    for (auto in : {qlm::MatrixInput::Attention, qlm::MatrixInput::AttentionOutput,
                    qlm::MatrixInput::Mlp, qlm::MatrixInput::MlpHidden}) {
      imp.observe(in, l, x, 3);
    }
  }
  imp.observe(qlm::MatrixInput::Head, 0, x, 3);
  REQUIRE(imp.save(tmp / "other.qlmi").ok());
  qlm::ConvertOptions o{qlm::test::stories_dir(), tmp / "out.qlm", DType::Q4, {}};
  o.importance = tmp / "other.qlmi";
  qlm::test::expect_error(qlm::convert_checkpoint(o), qlm::ErrorCode::Format,
                          {"other.qlmi", "columns"});
  CHECK_FALSE(std::filesystem::exists(tmp / "out.qlm"));
}

TEST_CASE("qlm-perplexity --save-importance writes what qlm-convert --importance reads",
          "[quant][quality]") {
  qlm::test::TempDir tmp;
  convert(tmp / "q8.qlm", DType::Q8);
  std::string text;
  for (int i = 0; i < 4; ++i) text += kText;
  qlm::test::write_text(tmp / "calib.txt", text);
  std::string out;
  const int rc =
      qlm::test::run_command(qlm::test::tool_path("qlm-perplexity") + " -m " +
                                 (tmp / "q8.qlm").string() + " -f " + (tmp / "calib.txt").string() +
                                 " -c 64 -t 1 --save-importance " + (tmp / "imp.qlmi").string(),
                             out);
  REQUIRE(rc == 0);
  auto imp = qlm::Importance::load(tmp / "imp.qlmi");
  REQUIRE(imp.ok());
  const std::size_t windows = std::stoul(out.substr(out.find("windows = ") + 10));
  CHECK(imp->tokens() == windows * 64);
  // It counted the tokens the model read (whole windows from the start), for the mixed recipe.
  const auto model = qlm::test::open_or_fail(tmp / "q8.qlm");
  const auto ids = qlm::perplexity_tokens(model->tokenizer(), text).value();
  std::vector<float> counts(model->config().vocab_size, 0.0f);
  for (std::size_t i = 0; i < windows * 64; ++i) counts[static_cast<std::size_t>(ids[i])] += 1.0f;
  CHECK(std::ranges::equal(imp->token_counts(), counts));
  const auto report = convert(tmp / "q4.qlm", DType::Q4, tmp / "imp.qlmi");
  auto file = qlm::format::ModelFile::open(tmp / "q4.qlm");
  REQUIRE(file.ok());
  CHECK(qlm::test::contains(*(*file)->metadata().find<std::string>("qlm.quantization.recipe"),
                            "importance"));
}

TEST_CASE("conversion writes the same bytes on one thread and on two", "[quant][quality][heavy]") {
  qlm::test::TempDir tmp;
  collect(tmp, tmp / "imp.qlmi");
  // Plain fitted scales, and importance with channel scales and error feedback (GPTQ): every
  // parallel step of the converter.
  for (const auto& importance : {std::filesystem::path(), tmp / "imp.qlmi"}) {
    for (DType type : {DType::Q4, DType::Q4NL, DType::Q8}) {
      std::vector<std::vector<std::uint8_t>> files;
      for (int threads : {1, 2}) {
        qlm::ConvertOptions o{qlm::test::stories_dir(), tmp / "out.qlm", type, {}};
        o.importance = importance;
        o.pool = qlm::make_spin_pool(threads);
        const auto report = qlm::convert_checkpoint(o);
        INFO((report.ok() ? std::string() : report.error().message));
        REQUIRE(report.ok());
        files.push_back(qlm::test::read_bytes(tmp / "out.qlm"));
      }
      INFO(qlm::to_string(type) << (importance.empty() ? "" : " with importance"));
      CHECK(files[0] == files[1]);
    }
  }
}
