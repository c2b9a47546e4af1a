// The mixed recipe with measured sensitivities (--calibration) on the real stories260K model: every
// matrix's choice reports its measured KL, the most sensitive small matrix is promoted, the plan
// fits the budget, temporary files are gone, and bad calibration texts are refused by name.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <string_view>

#include "qlm/convert/convert.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/format/tensor_names.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

using qlm::DType;

// Twice over it is about 270 tokens: one calibration window of 256.
const char* kText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
    "One day, she saw a big red ball in the park. She ran to the ball and kicked it very high. "
    "Her friend Tom came to play with her. They laughed and played all day long. When the sun "
    "went down, they went home. Lily was tired but happy. She told her mom about the ball. ";

std::string calibration_text() {
  std::string text;
  for (int i = 0; i < 2; ++i) text += kText;
  return text;
}

qlm::ConvertReport convert(const qlm::ConvertOptions& o) {
  auto report = qlm::convert_checkpoint(o);
  INFO((report.ok() ? std::string() : report.error().message));
  REQUIRE(report.ok());
  return *report;
}

// A mixed conversion of stories260K on `base`, measured on the calibration text (written to tmp).
qlm::ConvertOptions measured_mixed(const qlm::test::TempDir& tmp, DType base) {
  const auto calib = tmp / "calib.txt";
  std::ofstream(calib) << calibration_text();
  qlm::ConvertOptions o{qlm::test::stories_dir(), tmp / "mixed.qlm", base, {}};
  o.recipe = qlm::Recipe::Mixed;
  o.calibration = calib;
  return o;
}

// The base type's KL a choice line reports ("...; KL 1.23e-02 at q4, ... with only it
// quantized; ..."), or -1.
double reported_kl(const std::string& line) {
  const auto at = line.find("; KL ");
  return at == std::string::npos ? -1.0 : std::stod(line.substr(at + 5));
}

// Whether a choice line's types ("q4nl+q5 name: ...", one per band type) include `type`.
bool has_type(std::string_view line, std::string_view type) {
  std::string_view label = line.substr(0, line.find(' '));
  while (!label.empty()) {
    const std::size_t plus = std::min(label.find('+'), label.size());
    if (label.substr(0, plus) == type) return true;
    label.remove_prefix(std::min(label.size(), plus + 1));
  }
  return false;
}

}  // namespace

TEST_CASE("measured sensitivities decide the mixed plan and say so",
          "[quant][quality][mixed][heavy]") {
  qlm::test::TempDir tmp;
  qlm::ConvertOptions o = measured_mixed(tmp, DType::Q4);
  o.mixed_promotions = {DType::Q8};
  const auto report = convert(o);
  CHECK(report.bits_per_weight() <= 5.0);
  // Every matrix has the same q4 -> q8 cost per weight, so the largest measured KL per weight is
  // the first promotion; stories260K's matrices come in a few shapes, so compare within one:
  // k_proj and v_proj are both 32 x 64.
  double best_kv = 0.0;
  bool best_promoted = false;
  std::size_t q8 = 0;
  for (std::size_t i = 0; i + 1 < report.choices.size(); ++i) {
    const std::string& line = report.choices[i];
    INFO(line);
    const double kl = reported_kl(line);
    CHECK(kl > 0.0);
    CHECK(std::isfinite(kl));
    q8 += has_type(line, "q8");
    if ((line.find("k_proj") != std::string::npos || line.find("v_proj") != std::string::npos) &&
        kl > best_kv) {
      best_kv = kl;
      best_promoted = has_type(line, "q8");
    }
  }
  CHECK(q8 > 0);
  CHECK(best_promoted);
  for (const auto& f : std::filesystem::directory_iterator(tmp.path())) {
    CHECK(f.path().string().find("sensitivity") == std::string::npos);  // temporaries removed
  }
}

TEST_CASE("with q5 allowed, the mixed plan measures it and spends the budget on it",
          "[quant][quality][mixed][heavy]") {
  qlm::test::TempDir tmp;
  const qlm::ConvertOptions o = measured_mixed(tmp, DType::Q4NL);
  const auto report = convert(o);
  CHECK(report.bits_per_weight() <= 5.0);
  std::size_t q5 = 0;
  for (std::size_t i = 0; i + 1 < report.choices.size(); ++i) {
    const std::string& line = report.choices[i];
    INFO(line);
    CHECK(line.find(" at q4nl, ") != std::string::npos);  // both measured KLs are reported
    CHECK(line.find(" at q5 with only it quantized") != std::string::npos);
    q5 += has_type(line, "q5");
  }
  // The embedding's rows are weighted by how often the calibration text uses each token: the
  // story never uses SentencePiece's byte tokens (ids 3-258, but for the newline, 13), so with a
  // budget that cannot buy everything, those rows stay at the base type.
  qlm::ConvertOptions tight = o;
  tight.max_bits_per_weight = 4.85;
  tight.output = tmp / "tight.qlm";
  (void)convert(tight);
  const auto file = qlm::format::ModelFile::open(tight.output);
  REQUIRE(file.ok());
  std::size_t embed_bands = 0;
  for (const auto& t : (*file)->tensors()) {
    const auto band = qlm::parse_band_tensor(t.name, "model.embed_tokens.weight");
    if (!band) continue;
    ++embed_bands;
    INFO(t.name << " " << qlm::to_string(t.dtype));
    if (band->row0 >= 32 && band->row1 <= 256) CHECK(t.dtype == DType::Q4NL);
  }
  CHECK(embed_bands > 1);
  // One step to q5 buys a quarter of q8's bytes for most of its gain: most promotions are q5.
  CHECK(q5 > 4);
}

TEST_CASE("a calibration text that is missing or too short is refused by name", "[quant][mixed]") {
  qlm::test::TempDir tmp;
  qlm::ConvertOptions o{qlm::test::stories_dir(), tmp / "out.qlm", DType::Q4, {}};
  o.recipe = qlm::Recipe::Mixed;
  o.calibration = tmp / "absent.txt";
  qlm::test::expect_error(qlm::convert_checkpoint(o), qlm::ErrorCode::Io, {"absent.txt"});
  std::ofstream(tmp / "short.txt") << "Once upon a time.";
  o.calibration = tmp / "short.txt";
  qlm::test::expect_error(qlm::convert_checkpoint(o), qlm::ErrorCode::InvalidArgument,
                          {"short.txt", "too short"});
  CHECK_FALSE(std::filesystem::exists(tmp / "out.qlm"));
  for (const auto& f : std::filesystem::directory_iterator(tmp.path())) {
    CHECK(f.path().string().find("sensitivity") == std::string::npos);
  }
}
