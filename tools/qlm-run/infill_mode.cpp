// qlm-run --infill: code completion at a cursor. The text around the cursor comes from
// --fim-prefix/--fim-suffix or from --infill-file with --cursor LINE:COL; -p is text already typed
// at the cursor; --extra files are context. The answer is the middle, printed as it comes.
#include <fmt/format.h>

#include <cstdio>
#include <qlm/detail/read_file.hpp>
#include <qlm/infill.hpp>

#include "run.hpp"

namespace qlm::run {
namespace {

constexpr std::uint64_t kMaxSourceBytes = std::uint64_t{64} << 20;

// Byte offset of 1-based LINE:COL (COL counts UTF-8 bytes; one past the line's end is allowed).
Result<std::size_t> cursor_offset(const std::string& text, const std::string& cursor,
                                  const std::string& file) {
  unsigned long line = 0, col = 0;
  char tail = 0;
  if (std::sscanf(cursor.c_str(), "%lu:%lu%c", &line, &col, &tail) != 2 || line == 0 || col == 0) {
    return Error{ErrorCode::InvalidArgument,
                 "--cursor '" + cursor + "' is not LINE:COL (1-based, the column in bytes)"};
  }
  std::size_t start = 0;
  for (unsigned long l = 1; l < line; ++l) {
    const std::size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      return Error{ErrorCode::InvalidArgument,
                   fmt::format("--cursor {}: {} has only {} lines", cursor, file, l)};
    }
    start = nl + 1;
  }
  const std::size_t end = std::min(text.find('\n', start), text.size());
  if (col - 1 > end - start) {
    return Error{ErrorCode::InvalidArgument,
                 fmt::format("--cursor {}: line {} of {} has {} bytes (columns 1 to {})", cursor,
                             line, file, end - start, end - start + 1)};
  }
  return start + col - 1;
}

Result<InfillRequest> make_request(const Args& a) {
  InfillRequest r;
  r.typed = a.prompt;
  r.repo_name = a.repo_name;
  if (!a.infill_file.empty()) {
    if (!a.fim_prefix.empty() || !a.fim_suffix.empty()) {
      return Error{ErrorCode::InvalidArgument,
                   "--infill-file and --fim-prefix/--fim-suffix exclude each other"};
    }
    if (a.cursor.empty()) {
      return Error{ErrorCode::InvalidArgument, "--infill-file needs --cursor LINE:COL"};
    }
    auto text = detail::read_regular_file(a.infill_file, kMaxSourceBytes, "source file");
    if (!text) return text.error();
    auto at = cursor_offset(*text, a.cursor, a.infill_file);
    if (!at) return at.error();
    r.prefix = text->substr(0, *at);
    r.suffix = text->substr(*at);
    r.filename = a.infill_file;
  } else {
    r.prefix = a.fim_prefix;
    r.suffix = a.fim_suffix;
  }
  for (const std::string& path : a.extra) {
    auto text = detail::read_regular_file(path, kMaxSourceBytes, "extra context file");
    if (!text) return text.error();
    r.extra.push_back({path, std::move(*text)});
  }
  return r;
}

}  // namespace

int run_infill(const Args& a, std::shared_ptr<const Model> model) {
  auto request = make_request(a);
  if (!request) return fail(request.error().message);
  auto session = make_session(a, model);
  if (!session) return 1;
  // The prompt leaves room for the answer in the session's context.
  const auto budget = static_cast<std::int64_t>(session->context_size()) - a.n_predict;
  if (budget < 1) {
    return fail(fmt::format("-n {} leaves no room for a prompt in a context of {} tokens",
                            a.n_predict, session->context_size()));
  }
  InfillOptions options;
  options.max_tokens = static_cast<std::int32_t>(budget);
  options.order = a.spm_infill ? InfillOrder::SuffixPrefixMiddle : InfillOrder::PrefixSuffixMiddle;
  auto prompt = build_infill_prompt(model->tokenizer(), *request, options);
  if (!prompt) return fail(prompt.error().message);
  if (a.dump_prompt) return dump_prompt(prompt->text, prompt->ids);
  if (prompt->prefix_tokens_cut + prompt->suffix_tokens_cut + prompt->chunks_dropped > 0) {
    std::fprintf(stderr,
                 "qlm-run: infill: cut %zu prefix and %zu suffix tokens and %zu extra files to "
                 "fit %lld tokens\n",
                 prompt->prefix_tokens_cut, prompt->suffix_tokens_cut, prompt->chunks_dropped,
                 static_cast<long long>(budget));
  }
  GenerateOptions g = generate_options(a);
  g.stop_tokens = prompt->end_ids;
  Sampler sampler(a.sampling);
  auto r = generate(*session, sampler, prompt->ids, g);
  if (!r) return fail(r.error().message);
  print_stats(*r, *session);
  return 0;
}

}  // namespace qlm::run
