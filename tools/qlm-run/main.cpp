// qlm-run: generate text from a .qlm model. Only the generated text goes to stdout; timings and
// diagnostics go to stderr.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <qlm/detail/read_file.hpp>
#include <qlm/generate.hpp>
#include <qlm/model.hpp>
#include <sstream>

#include "cli_util.hpp"

namespace {

struct Args {
  std::string model, prompt, prompt_file;
  int n_predict = 128;
  qlm::SamplerOptions sampling;
  int threads = 0;
  std::uint32_t context = 0;
  std::vector<std::string> stop;
  bool reference = false;
  qlm::tools::IntegrityOptions integrity;
  bool ignore_eos = false;
  bool no_mmap = false;
  std::string kv_type = "f32";
  std::string activations = "auto";
};

int fail(const std::string& message) {
  std::fprintf(stderr, "qlm-run: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generate text with a .qlm model"};
  Args a;
  app.add_option("-m,--model", a.model, ".qlm model file")->required();
  app.add_option("-p,--prompt", a.prompt, "prompt text (empty: start from BOS)");
  app.add_option("-f,--file", a.prompt_file, "read the prompt from a file");
  app.add_option("-n,--n-predict", a.n_predict, "tokens to generate (default 128)")
      ->check(qlm::tools::whole_number(0, 1 << 30));
  app.add_option("--temp", a.sampling.temperature, "temperature; 0 = greedy (default 0.8)")
      ->check(qlm::tools::finite_number());
  app.add_option("--top-k", a.sampling.top_k, "top-k, 0 = off (default 40)")
      ->check(qlm::tools::whole_number(0, 1 << 30));
  app.add_option("--top-p", a.sampling.top_p, "top-p, 1 = off (default 0.95)")
      ->check(qlm::tools::finite_number());
  app.add_option("--min-p", a.sampling.min_p, "min-p, 0 = off (default 0.05)")
      ->check(qlm::tools::finite_number());
  app.add_option("--repeat-penalty", a.sampling.repeat_penalty, "1 = off (default 1.0)")
      ->check(qlm::tools::finite_number());
  app.add_option("--presence-penalty", a.sampling.presence_penalty, "default 0")
      ->check(qlm::tools::finite_number());
  app.add_option("--frequency-penalty", a.sampling.frequency_penalty, "default 0")
      ->check(qlm::tools::finite_number());
  app.add_option("--repeat-last-n", a.sampling.penalty_window, "penalty window (default 64)");
  app.add_option("--seed", a.sampling.seed, "RNG seed (default 0)");
  app.add_option("-t,--threads", a.threads, "threads (default: all cores)")
      ->check(qlm::tools::whole_number(0, qlm::tools::kMaxThreads));
  app.add_option("-c,--ctx-size", a.context, "context size (default min(trained, 4096))");
  app.add_flag("--no-mmap", a.no_mmap,
               "read the model into private memory instead of mapping it (huge pages)");
  app.add_option("--kv-type", a.kv_type, "KV cache element type: f32 or f16 (default f32)")
      ->check(CLI::IsMember({"f32", "f16"}));
  app.add_option(
         "--activations", a.activations,
         "matmul inputs: auto (two int8 passes into q8 weights), int8 or int8x2 (default auto)")
      ->check(CLI::IsMember({"auto", "int8", "int8x2"}));
  app.add_option("--stop", a.stop, "stop string (repeatable)");
  app.add_flag("--ignore-eos", a.ignore_eos, "keep generating past end-of-generation tokens");
  app.add_flag("--reference", a.reference, "use the scalar fp32 reference path (slow)");
  a.integrity.add_to(app);
  CLI11_PARSE(app, argc, argv);

  if (!a.prompt_file.empty()) {
    auto text = qlm::detail::read_regular_file(a.prompt_file, 64u << 20, "prompt file");
    if (!text) return fail(text.error().message);
    a.prompt = std::move(*text);
  }
  auto model = qlm::Model::open(a.model, {.verify_checksums = a.integrity.verify,
                                          .mmap = !a.no_mmap,
                                          .trusted_keys = a.integrity.keys()});
  if (!model) return fail(model.error().message);
  const qlm::Tokenizer& tok = (*model)->tokenizer();
  auto encoded = tok.encode(a.prompt);
  if (!encoded) return fail(encoded.error().message);
  std::vector<std::int32_t> prompt = std::move(*encoded);
  if (prompt.empty()) {
    if (tok.bos() < 0) return fail("empty prompt and the model has no BOS token");
    prompt.push_back(tok.bos());
  }
  auto session = qlm::Session::create(
      *model, {.context = a.context,
               .threads = a.threads,
               .kv_type = *qlm::parse_kv_type(a.kv_type),
               .isa = a.reference ? "reference" : "",
               .activations = *qlm::parse_activation_precision(a.activations)});
  if (!session) return fail(session.error().message);
  qlm::Sampler sampler(a.sampling);
  qlm::GenerateOptions options;
  options.max_tokens = a.n_predict;
  options.stop = a.stop;
  options.stop_at_end_of_generation = !a.ignore_eos;
  options.on_token = [](const qlm::GeneratedToken& t) {
    std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  auto result = qlm::generate(*session, sampler, prompt, options);
  if (!result) return fail(result.error().message);
  const auto& s = result->stats;
  std::fprintf(stderr,
               "\nqlm-run: prompt %zu tokens in %.3f s (%.1f tok/s), generated %zu tokens in "
               "%.3f s (%.1f tok/s), time to first token %.3f s\n",
               s.prompt_tokens, s.prompt_seconds,
               s.prompt_seconds > 0 ? s.prompt_tokens / s.prompt_seconds : 0.0, s.generated_tokens,
               s.generation_seconds,
               s.generation_seconds > 0 && s.generated_tokens > 1
                   ? (s.generated_tokens - 1) / s.generation_seconds
                   : 0.0,
               s.time_to_first_token);
  if (result->stop == qlm::StopReason::ContextFull) {
    std::fprintf(stderr, "qlm-run: stopped: the context of %u tokens is full\n",
                 session->context_size());
  }
  return 0;
}
