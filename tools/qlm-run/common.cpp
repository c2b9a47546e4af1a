// What qlm-run's modes share: the session, generation options, the stats line, --dump-prompt.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "run.hpp"

namespace qlm::run {

int fail(const std::string& message) {
  std::fprintf(stderr, "qlm-run: %s\n", message.c_str());
  return 1;
}

std::optional<Session> make_session(const Args& a, std::shared_ptr<const Model> model) {
  auto session = Session::create(std::move(model),
                                 {.context = a.context,
                                  .threads = a.threads,
                                  .kv_type = *parse_kv_type(a.kv_type),
                                  .isa = a.reference ? "reference" : "",
                                  .activations = *parse_activation_precision(a.activations)});
  if (!session) {
    fail(session.error().message);
    return std::nullopt;
  }
  return std::move(*session);
}

GenerateOptions generate_options(const Args& a) {
  GenerateOptions options;
  options.max_tokens = a.n_predict;
  options.stop = a.stop;
  options.stop_at_end_of_generation = !a.ignore_eos;
  options.on_token = [](const GeneratedToken& t) {
    std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  return options;
}

void print_stats(const GenerateResult& r, const Session& session) {
  const auto& s = r.stats;
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
  if (r.stop == StopReason::ContextFull) {
    std::fprintf(stderr, "qlm-run: stopped: the context of %u tokens is full\n",
                 session.context_size());
  }
}

int dump_prompt(const std::string& text, std::span<const std::int32_t> tokens) {
  const nlohmann::json j = {{"prompt", text}, {"tokens", tokens}};
  // Bytes that are not UTF-8 cannot be JSON text: they show as U+FFFD; the ids stay exact.
  const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace qlm::run
