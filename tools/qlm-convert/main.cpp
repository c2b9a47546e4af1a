// qlm-convert: Hugging Face checkpoint directory -> packed .qlm file.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <qlm/convert/convert.hpp>

#include "cli_util.hpp"

namespace {

std::atomic<bool> g_interrupted{false};  // set by SIGINT/SIGTERM; checked between tensors

void on_signal(int) {
  g_interrupted = true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Convert a Hugging Face checkpoint (config.json + safetensors + tokenizer) to .qlm"};
  std::string input, output, type = "q8", scales = "fit", importance, mixed_base = "q4nl";
  double max_bpw = 5.0;
  app.add_option("input", input, "Hugging Face model directory")->required();
  app.add_option("-o,--output", output, "output .qlm file")->required();
  app.add_option("--type", type,
                 "type of weight matrices: f32|f16|bf16|q8|q5|q4|q4nl, or mixed (4-bit with the "
                 "most sensitive matrices at q5 or q8, within --max-bpw) (default q8)");
  app.add_option("--max-bpw", max_bpw, "mixed: average bits per weight budget (default 5.0)");
  app.add_option("--mixed-base", mixed_base, "mixed: the 4-bit type, q4nl (default) or q4");
  std::string promotions = "q5,q8";
  app.add_option("--mixed-promote", promotions,
                 "mixed: the types a matrix may be promoted to, q5,q8 (default), q5 or q8");
  app.add_option(
      "--scales", scales,
      "block scales of quantized types: fit (error-minimizing search, default) or rtn (round to "
      "nearest, as llama.cpp's Q4_0/Q5_0/Q8_0)");
  app.add_option("--importance", importance,
                 "importance file from qlm-perplexity --save-importance: weighs each weight's "
                 "error by how strongly its input column is activated");
  unsigned bands = 16;
  app.add_option("--mixed-bands", bands,
                 "mixed: cut each matrix into up to this many bands of rows, each at its own type "
                 "(default 16; 1 = whole matrices)")
      ->check(CLI::Range(1u, 4096u));
  std::string calibration;
  app.add_option("--calibration", calibration,
                 "mixed: measure each matrix's sensitivity on this text (KL divergence with only "
                 "it quantized; one conversion per matrix, models up to 50M parameters)");
  bool no_gptq = false;
  app.add_flag("--no-gptq", no_gptq,
               "with --importance: round each weight on its own instead of compensating rounding "
               "errors on later columns (GPTQ, which needs the file's sampled activations)");
  std::string chat_template;
  app.add_option("--chat-template", chat_template,
                 "Jinja file to store as the model's default chat template instead of the "
                 "checkpoint's (tokenizer_config.json or chat_template.jinja)");
  CLI11_PARSE(app, argc, argv);

  const bool mixed = type == "mixed";
  const auto dtype = qlm::parse_dtype(mixed ? mixed_base : type);
  if (!dtype) {
    fmt::print(stderr,
               "qlm-convert: unknown --type '{}' (f32, f16, bf16, q8, q5, q4, q4nl, mixed)\n",
               mixed ? mixed_base : type);
    return 2;
  }
  if (scales != "fit" && scales != "rtn") {
    fmt::print(stderr, "qlm-convert: unknown --scales '{}' (fit, rtn)\n", scales);
    return 2;
  }
  std::vector<qlm::DType> promote;
  for (std::size_t at = 0; at <= promotions.size();) {
    const std::size_t end = std::min(promotions.find(',', at), promotions.size());
    const std::string name = promotions.substr(at, end - at);
    const auto t = qlm::parse_dtype(name);
    if (!t || (*t != qlm::DType::Q5 && *t != qlm::DType::Q8)) {
      fmt::print(stderr, "qlm-convert: --mixed-promote takes q5 and/or q8, not '{}'\n", name);
      return 2;
    }
    promote.push_back(*t);
    at = end + 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  qlm::tools::ProgressBar bar("converting");
  qlm::ConvertOptions options{input, output, *dtype, {}};
  options.recipe = mixed ? qlm::Recipe::Mixed : qlm::Recipe::Uniform;
  options.max_bits_per_weight = max_bpw;
  options.mixed_promotions = promote;
  options.mixed_bands = bands;
  options.scale_method =
      scales == "rtn" ? qlm::quant::ScaleMethod::Rtn : qlm::quant::ScaleMethod::Fit;
  options.importance = importance;
  options.error_feedback = !no_gptq;
  options.calibration = calibration;
  options.chat_template = chat_template;
  options.on_progress = [&](std::size_t done, std::size_t total, std::uint64_t) {
    bar.update(done, total);
    return !g_interrupted.load();
  };
  const auto start = std::chrono::steady_clock::now();
  auto report = qlm::convert_checkpoint(options);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!report) {
    bar.abandon();
    fmt::print(stderr, "qlm-convert: {}\n", report.error().message);
    return 1;
  }
  for (const auto& note : report->notes) fmt::print(stderr, "note: {}\n", note);
  for (const auto& choice : report->choices) fmt::print(stderr, "mixed: {}\n", choice);
  fmt::print(stderr,
             "wrote {}: {} tensors, {} parameters, {} ({} of tensor data), {:.3f} bits "
             "per weight, type {}, in {:.2f} s\n",
             output, report->tensors, report->weights, qlm::tools::human_bytes(report->file_bytes),
             qlm::tools::human_bytes(report->weight_bytes), report->bits_per_weight(), type, secs);
  return 0;
}
