// Arbitrary infill requests through Qwen2.5's real tokenizer (with its FIM tokens): the input is
// cut into prefix, suffix, typed text, names and chunks, with a budget from its first bytes.
// Properties: the prompt never exceeds its budget, every id is in range, and the caching builder
// gives exactly what the one-shot function gives.
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "qlm/infill.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"

namespace {

const qlm::Tokenizer* g_tokenizer = nullptr;  // set once by the initializer

// The next field of the input: up to the next 0xFF byte (or the end).
std::string next_field(std::string_view& in) {
  const std::size_t end = std::min(in.find('\xFF'), in.size());
  std::string out(in.substr(0, end));
  in.remove_prefix(std::min(end + 1, in.size()));
  return out;
}

bool same(const qlm::InfillPrompt& a, const qlm::InfillPrompt& b) {
  return a.ids == b.ids && a.text == b.text && a.end_ids == b.end_ids &&
         a.prefix_tokens_cut == b.prefix_tokens_cut && a.suffix_tokens_cut == b.suffix_tokens_cut &&
         a.chunks_dropped == b.chunks_dropped;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* shared = std::getenv("QLM_SHARED_DIR");
  const std::filesystem::path root = shared ? shared : QLM_SHARED_DIR;
  auto vocab = qlm::load_hf_tokenizer(root / "tokenizers/qwen2.5-0.5b");
  if (!vocab.ok()) std::abort();  // the shared data is missing: nothing to fuzz
  static const qlm::Tokenizer tok = qlm::Tokenizer::create(std::move(*vocab)).value();
  g_tokenizer = &tok;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  qlm::InfillOptions options;
  options.max_tokens = 1 + data[0] * 4;       // 1 .. 1021
  options.max_local_tokens = data[1] & 0x7F;  // 0 (no cap) .. 127
  options.order =
      (data[2] & 1) ? qlm::InfillOrder::SuffixPrefixMiddle : qlm::InfillOrder::PrefixSuffixMiddle;
  std::string_view in(reinterpret_cast<const char*>(data) + 3, size - 3);
  qlm::InfillRequest request;
  request.prefix = next_field(in);
  request.suffix = next_field(in);
  request.typed = next_field(in);
  request.filename = next_field(in);
  request.repo_name = next_field(in);
  while (!in.empty() && request.extra.size() < 8) {
    std::string name = next_field(in);
    request.extra.push_back({std::move(name), next_field(in)});
  }
  const qlm::Tokenizer& tok = *g_tokenizer;
  auto once = qlm::build_infill_prompt(tok, request, options);
  auto builder = qlm::InfillPromptBuilder::create(tok, options);
  if (!builder.ok()) std::abort();           // the vocabulary has FIM tokens
  for (int round = 0; round < 2; ++round) {  // the second build comes from the cache
    auto built = builder->build(request);
    if (built.ok() != once.ok()) std::abort();
    if (once.ok() && !same(*built, *once)) std::abort();
  }
  if (!once.ok()) return 0;
  if (once->ids.size() > static_cast<std::size_t>(options.max_tokens)) std::abort();
  for (const std::int32_t id : once->ids) {
    if (id < 0 || id >= tok.size()) std::abort();
  }
  return 0;
}
