// qlm-convert: Hugging Face checkpoint directory -> packed .qlm file.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <qlm/convert.hpp>

#include "cli_util.hpp"

namespace {

std::atomic<bool> g_interrupted{false};  // set by SIGINT/SIGTERM; checked between tensors

void on_signal(int) {
  g_interrupted = true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Convert a Hugging Face checkpoint (config.json + safetensors + tokenizer) to .qlm"};
  std::string input, output, type = "q8";
  app.add_option("input", input, "Hugging Face model directory")->required();
  app.add_option("-o,--output", output, "output .qlm file")->required();
  app.add_option("--type", type, "type of weight matrices: f32|f16|bf16|q8|q4 (default q8)");
  CLI11_PARSE(app, argc, argv);

  const auto dtype = qlm::parse_dtype(type);
  if (!dtype) {
    fmt::print(stderr, "qlm-convert: unknown --type '{}' (f32, f16, bf16, q8, q4)\n", type);
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  qlm::tools::ProgressBar bar("converting");
  qlm::ConvertOptions options{input, output, *dtype, {}};
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
  fmt::print(stderr,
             "wrote {}: {} tensors, {} parameters, {} ({} of tensor data), {:.3f} bits "
             "per weight, type {}, in {:.2f} s\n",
             output, report->tensors, report->weights, qlm::tools::human_bytes(report->file_bytes),
             qlm::tools::human_bytes(report->weight_bytes), report->bits_per_weight(), type, secs);
  return 0;
}
