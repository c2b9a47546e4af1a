// qlm-run: generate text from a .qlm model: a plain prompt (-p/-f), a chat (--chat), or code
// infill (--infill). Only the generated text goes to stdout (or, with --dump-prompt, the exact
// prompt as JSON); timings and diagnostics go to stderr.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <qlm/detail/read_file.hpp>

#include "cli_util.hpp"
#include "run.hpp"

namespace {

using qlm::run::Args;
using qlm::run::fail;

void add_sampling(CLI::App& app, Args& a) {
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
}

void add_runtime(CLI::App& app, Args& a) {
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
  app.add_flag("--reference", a.reference, "use the scalar fp32 reference path (slow)");
}

void add_chat(CLI::App& app, Args& a) {
  app.add_flag("--chat", a.chat,
               "chat with the model's template: interactively on the terminal, or once with "
               "--messages");
  app.add_option("--system", a.system, "--chat: the system prompt");
  app.add_option("--chat-template", a.chat_template,
                 "--chat: a template the model stores (default, tool_use...), a built-in "
                 "(chatml) or a Jinja file (default: the model's own)");
  app.add_option("--messages", a.messages_file,
                 "--chat: answer this conversation (a JSON messages array, or an OpenAI request "
                 "body with messages and tools) once and exit")
      ->check(CLI::ExistingFile);
}

void add_infill(CLI::App& app, Args& a) {
  app.add_flag("--infill", a.infill,
               "complete code at a cursor with the model's fill-in-the-middle tokens (-p: text "
               "already typed at the cursor)");
  app.add_option("--fim-prefix", a.fim_prefix, "--infill: the text before the cursor");
  app.add_option("--fim-suffix", a.fim_suffix, "--infill: the text after the cursor");
  app.add_option("--infill-file", a.infill_file, "--infill: complete in this source file")
      ->check(CLI::ExistingFile);
  app.add_option("--cursor", a.cursor,
                 "--infill-file: LINE:COL of the cursor (1-based; the column counts UTF-8 bytes)");
  app.add_option("--extra", a.extra, "--infill: a file to give as context (repeatable)")
      ->check(CLI::ExistingFile);
  app.add_option("--repo-name", a.repo_name,
                 "--infill: the repository's name (for models with a repo-name token)");
  app.add_flag("--spm-infill", a.spm_infill, "--infill: suffix before prefix (SPM order)");
}

// Plain generation: the prompt is the text, tokenized with the model's BOS/EOS rules.
int run_plain(const Args& a, std::shared_ptr<const qlm::Model> model) {
  const qlm::Tokenizer& tok = model->tokenizer();
  auto encoded = tok.encode(a.prompt);
  if (!encoded) return fail(encoded.error().message);
  std::vector<std::int32_t> prompt = std::move(*encoded);
  if (a.dump_prompt) return qlm::run::dump_prompt(a.prompt, prompt);
  if (prompt.empty()) {
    if (tok.bos() < 0) return fail("empty prompt and the model has no BOS token");
    prompt.push_back(tok.bos());
  }
  auto session = qlm::run::make_session(a, model);
  if (!session) return 1;
  qlm::Sampler sampler(a.sampling);
  auto result = qlm::generate(*session, sampler, prompt, qlm::run::generate_options(a));
  if (!result) return fail(result.error().message);
  qlm::run::print_stats(*result, *session);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generate text with a .qlm model"};
  Args a;
  qlm::tools::IntegrityOptions integrity;
  app.add_option("-m,--model", a.model, ".qlm model file")->required();
  app.add_option("-p,--prompt", a.prompt, "prompt text (empty: start from BOS)");
  app.add_option("-f,--file", a.prompt_file, "read the prompt from a file");
  app.add_option("-n,--n-predict", a.n_predict, "tokens to generate (per turn; default 128)")
      ->check(qlm::tools::whole_number(0, 1 << 30));
  app.add_option("--stop", a.stop, "stop string (repeatable)");
  app.add_flag("--ignore-eos", a.ignore_eos, "keep generating past end-of-generation tokens");
  app.add_flag("--dump-prompt", a.dump_prompt,
               "print {\"prompt\": text, \"tokens\": ids} (the exact input after templating or "
               "FIM formatting) as one JSON line and exit without generating");
  add_sampling(app, a);
  add_runtime(app, a);
  add_chat(app, a);
  add_infill(app, a);
  integrity.add_to(app);
  CLI11_PARSE(app, argc, argv);

  if (!a.prompt_file.empty()) {
    auto text = qlm::detail::read_regular_file(a.prompt_file, 64u << 20, "prompt file");
    if (!text) return fail(text.error().message);
    a.prompt = std::move(*text);
  }
  if (a.chat && !a.prompt.empty()) return fail("--chat takes --messages or the terminal, not -p");
  if (a.chat && a.infill) return fail("--chat and --infill exclude each other");
  const bool chat_options =
      !a.system.empty() || !a.chat_template.empty() || !a.messages_file.empty();
  const bool infill_options = !a.fim_prefix.empty() || !a.fim_suffix.empty() ||
                              !a.infill_file.empty() || !a.cursor.empty() || !a.extra.empty() ||
                              !a.repo_name.empty() || a.spm_infill;
  if (chat_options && !a.chat) return fail("--system, --chat-template and --messages need --chat");
  if (infill_options && !a.infill)
    return fail(
        "the --fim-*, --infill-file, --cursor, --extra, "
        "--repo-name and --spm-infill options need --infill");
  auto model = qlm::Model::open(
      a.model,
      {.verify_checksums = integrity.verify, .mmap = !a.no_mmap, .trusted_keys = integrity.keys()});
  if (!model) return fail(model.error().message);
  if (a.chat) return qlm::run::run_chat(a, *model);
  if (a.infill) return qlm::run::run_infill(a, *model);
  return run_plain(a, *model);
}
