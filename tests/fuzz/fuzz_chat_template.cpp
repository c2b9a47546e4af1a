// A chat template from a model file (Jinja source), rendered over a conversation: the lexer,
// parser and interpreter with their step, depth and output limits. The input is the template,
// optionally followed by kFileSeparator and a JSON messages array (else a fixed conversation).
// Limits are tightened so that one input stays well under the fuzzer's timeout.
#include <string>

#include "fuzz_util.hpp"
#include "qlm/chat_template.hpp"

namespace {

constexpr std::string_view kConversation = R"([{"role": "system", "content": "Be brief."},
  {"role": "user", "content": "Hi {{ there }}"}, {"role": "assistant", "content": "Hello."},
  {"role": "user", "content": "Bye"}])";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto [source, messages] = qlm::fuzz::split({data, size}, qlm::fuzz::kFileSeparator);
  const std::string_view text(reinterpret_cast<const char*>(source.data()), source.size());
  auto tmpl = qlm::ChatTemplate::parse(text, "fuzz");
  if (!tmpl.ok()) return 0;
  qlm::ChatTemplateOptions options;
  options.add_generation_prompt = true;
  options.special_tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  options.clock = [] { return std::tm{}; };
  options.limits = {.max_steps = 200'000, .max_call_depth = 16, .max_output_bytes = 1u << 20};
  const std::string_view json =
      messages.empty()
          ? kConversation
          : std::string_view(reinterpret_cast<const char*>(messages.data()), messages.size());
  (void)tmpl->render_json(json, options);
  return 0;
}
