// qlm-perplexity: perplexity of a model over a text, and its divergence from logits saved by a
// reference run (KL divergence, same top token). Progress and diagnostics go to stderr; stdout
// ends with lines a script can read ("PPL = …", "KLD mean = …", "KLD p99 = …", "same top = …%").
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <csignal>
#include <fstream>
#include <qlm/detail/read_file.hpp>
#include <qlm/eval/logits_file.hpp>
#include <qlm/eval/perplexity.hpp>
#include <qlm/model.hpp>
#include <qlm/quant/importance.hpp>
#include <sstream>

#include "cli_util.hpp"

namespace {

std::atomic<bool> g_interrupted{false};  // set by SIGINT/SIGTERM; checked between windows

void on_signal(int) {
  g_interrupted = true;
}

int fail(const std::string& message) {
  fmt::print(stderr, "qlm-perplexity: {}\n", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Perplexity of a .qlm model over a text, and KL divergence from a reference run"};
  std::string model_path, text_path, save_path, kl_path, importance_path;
  std::uint32_t window = 256;
  std::size_t chunks = 0, moment_columns = 1024;
  int threads = 0;
  app.add_option("-m,--model", model_path, ".qlm model file")->required();
  app.add_option("-f,--file", text_path, "text file to score")->required();
  app.add_option("-c,--ctx-size", window, "tokens per window (default 256)");
  app.add_option("--chunks", chunks, "evaluate at most N windows (default: all)")
      ->check(qlm::tools::whole_number(1, std::int64_t{1} << 40));
  auto* save = app.add_option("--save-logits", save_path,
                              "save the scored logits (fp32) as a reference for --kl");
  app.add_option("--kl", kl_path, "compare with logits saved by --save-logits")->excludes(save);
  app.add_option("--save-importance", importance_path,
                 "also collect the activations every weight matrix reads over the whole text "
                 "and save them for qlm-convert --importance (calibration)");
  app.add_option("--importance-moments", moment_columns,
                 "with --save-importance: also record E[x x^T] of every matrix input at most this "
                 "wide (k^2 floats each), for qlm-convert's error-feedback (GPTQ) rounding; 0 = "
                 "none (default 1024)");
  app.add_option("-t,--threads", threads, "threads (default: all cores)")
      ->check(qlm::tools::whole_number(0, qlm::tools::kMaxThreads));
  bool no_mmap = false;
  app.add_flag("--no-mmap", no_mmap,
               "read the model into private memory instead of mapping it (huge pages)");
  std::string activations = "auto";
  app.add_option(
         "--activations", activations,
         "matmul inputs: auto (two int8 passes into q8 weights), int8 or int8x2 (default auto)")
      ->check(CLI::IsMember({"auto", "int8", "int8x2"}));
  qlm::tools::IntegrityOptions integrity;
  integrity.add_to(app);
  CLI11_PARSE(app, argc, argv);

  auto text = qlm::detail::read_regular_file(text_path, std::uint64_t{1} << 30, "text file");
  if (!text) return fail(text.error().message);

  auto model = qlm::Model::open(
      model_path,
      {.verify_checksums = integrity.verify, .mmap = !no_mmap, .trusted_keys = integrity.keys()});
  if (!model) return fail(model.error().message);
  auto encoded = qlm::perplexity_tokens((*model)->tokenizer(), *text);
  if (!encoded) return fail(encoded.error().message);
  const std::vector<std::int32_t> tokens = std::move(*encoded);
  const std::uint32_t trained = (*model)->config().max_position_embeddings;
  if (trained > 0 && window > trained) {
    fmt::print(stderr,
               "qlm-perplexity: warning: windows of {} tokens exceed the {} the model was "
               "trained on\n",
               window, trained);
  }
  fmt::print(stderr, "qlm-perplexity: {}: {} tokens, {} windows of {}\n", text_path, tokens.size(),
             window >= 3 ? tokens.size() / window : 0, window);

  if (window >= 3 && tokens.size() < window) {
    return fail(fmt::format("{}: {} tokens, fewer than one window of {} (see -c)", text_path,
                            tokens.size(), window));
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const bool tty = isatty(2) != 0;
  qlm::PerplexityOptions options{.window = window,
                                 .max_windows = chunks,
                                 .save_logits = save_path,
                                 .reference_logits = kl_path};
  std::size_t last_step = 0;
  options.on_window = [&](const qlm::PerplexityProgress& p) {
    const double per = p.seconds / static_cast<double>(p.window);
    const std::string line =
        fmt::format("[{}/{}] PPL {:.4f}, {:.3f} s/window, {:.0f} s left", p.window, p.windows,
                    qlm::perplexity(*p.nll), per, per * static_cast<double>(p.windows - p.window));
    const std::size_t step = p.window * 10 / p.windows;  // without a terminal: every 10%
    if (tty) {
      fmt::print(stderr, "\r{}\033[K{}", line, p.window == p.windows ? "\n" : "");
    } else if (step != last_step || p.window == p.windows) {
      fmt::print(stderr, "{}\n", line);
    }
    last_step = step;
    return !g_interrupted.load();
  };
  qlm::SessionOptions session_options;
  session_options.threads = threads;
  session_options.activations = *qlm::parse_activation_precision(activations);
  std::shared_ptr<qlm::Importance> importance;
  if (!importance_path.empty()) {
    importance = std::make_shared<qlm::Importance>((*model)->config(), moment_columns);
    session_options.observer = importance;
  }
  auto result = qlm::evaluate_perplexity(*model, tokens, options, session_options);
  if (!result) {
    if (tty) fmt::print(stderr, "\n");
    return fail(result.error().message);
  }
  if (importance) {
    // The tokens the model read: whole windows from the start.
    const std::size_t read = std::min(tokens.size(), result->windows * std::size_t{window});
    importance->count_tokens(std::span(tokens).first(read));
    if (auto saved = importance->save(importance_path); !saved) return fail(saved.error().message);
    fmt::print(stderr, "qlm-perplexity: saved importance over {} tokens to {}\n",
               importance->tokens(), importance_path);
  }
  const qlm::PerplexityResult& r = *result;
  if (!kl_path.empty() && r.windows < std::min(r.windows_available, chunks ? chunks : SIZE_MAX)) {
    fmt::print(stderr, "qlm-perplexity: {} holds {} windows; evaluated those\n", kl_path,
               r.windows);
  }
  if (!save_path.empty()) {
    fmt::print(stderr, "qlm-perplexity: saved the logits of {} windows to {}\n", r.windows,
               save_path);
  }
  fmt::print("windows = {} of {} tokens, {} tokens scored, {:.2f} s\n", r.windows, window,
             r.nll.count(), r.seconds);
  if (!kl_path.empty()) {
    fmt::print("reference PPL = {:.6f} +/- {:.6f}\n", qlm::perplexity(r.reference_nll),
               qlm::perplexity_error(r.reference_nll));
  }
  fmt::print("PPL = {:.6f} +/- {:.6f}\n", qlm::perplexity(r.nll), qlm::perplexity_error(r.nll));
  if (!kl_path.empty()) {
    fmt::print("KLD mean = {:.6g} +/- {:.6g}\n", r.kld.mean(), r.kld.standard_error());
    fmt::print("KLD p99 = {:.6g}\n", r.kld.percentile(99.0));
    fmt::print("same top = {:.3f}% +/- {:.3f}%\n", 100.0 * r.same_top.fraction(),
               100.0 * r.same_top.standard_error());
  }
  return 0;
}
