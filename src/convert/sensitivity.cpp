// measure_sensitivity: writes the model once in f32 (the reference logits) and once per matrix and
// type with only that matrix quantized, through the conversion's own writer (channel scales and
// error feedback included), so the measured matrix is exactly the one the recipe would ship.
#include "convert/sensitivity.hpp"

#include <fstream>
#include <sstream>
#include <vector>

#include "qlm/detail/read_file.hpp"
#include "qlm/eval/perplexity.hpp"
#include "qlm/model.hpp"
#include "util/fail.hpp"

namespace qlm::detail {
namespace {

// Removes its file however the measurement ends.
struct TempFile {
  std::filesystem::path path;
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

}  // namespace

Sensitivity measure_sensitivity(const std::filesystem::path& calibration,
                                const std::filesystem::path& output,
                                std::span<const std::string> names, std::span<const DType> types,
                                const ProbeWriter& write) {
  const std::string text =
      unwrap(read_regular_file(calibration, std::uint64_t{1} << 30, "calibration text"));
  const std::string base = output.string();
  const TempFile model_file{base + ".sensitivity.qlm"}, ref{base + ".sensitivity.logits"};
  Sensitivity result;
  std::vector<std::int32_t> tokens;  // every probe model has the same tokenizer: encode once
  auto evaluate = [&](const std::string& quantized, DType type, const PerplexityOptions& p) {
    write(quantized, type, model_file.path);
    const auto model = unwrap(Model::open(model_file.path));
    if (tokens.empty()) {
      tokens = unwrap(perplexity_tokens(model->tokenizer(), text));
      result.token_counts.assign(model->config().vocab_size, 0.0);
      for (std::int32_t t : tokens) result.token_counts[static_cast<std::size_t>(t)] += 1.0;
    }
    if (tokens.size() < p.window) {
      fail(ErrorCode::InvalidArgument, "{}: {} tokens, too short for one window of {}",
           calibration.string(), tokens.size(), p.window);
    }
    return unwrap(evaluate_perplexity(model, tokens, p, {}));
  };
  evaluate("", DType::F32, {.max_windows = kSensitivityWindows, .save_logits = ref.path});
  const PerplexityOptions p{.max_windows = kSensitivityWindows, .reference_logits = ref.path};
  for (const auto& name : names) {
    for (DType t : types) result.kl[name][t] = evaluate(name, t, p).kld.mean();
  }
  return result;
}

}  // namespace qlm::detail
