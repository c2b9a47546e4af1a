// evaluate_perplexity() on the real stories260K model: its perplexity equals one computed here
// from Session logits, a model compared with its own saved logits diverges by exactly 0, and a
// logits file from a different text, window size or model is refused naming the file.
#include <catch2/catch.hpp>

#include "eval/story_text.hpp"
#include "model/model_helpers.hpp"
#include "qlm/eval/logits_file.hpp"
#include "qlm/eval/perplexity.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

// Tests run in parallel on few cores: one thread each.
const SessionOptions kOneThread{.threads = 1};

}  // namespace

TEST_CASE("evaluate_perplexity equals exp(mean NLL) of Session logits", "[eval][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::F32);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto tokens = perplexity_tokens(model->tokenizer(), story_text(60)).value();
  REQUIRE(tokens.size() > 5 * 64);
  CHECK(tokens[0] == model->tokenizer().bos());

  auto r = evaluate_perplexity(model, tokens, {.window = 64, .max_windows = 5}, kOneThread);
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r.ok());
  CHECK(r->tokens == tokens.size());
  CHECK(r->windows_available == tokens.size() / 64);
  CHECK(r->windows == 5);
  CHECK(r->nll.count() == 5 * 31);  // targets 33 … 63 of each window
  CHECK(r->kld.count() == 0);

  auto session = Session::create(model, {.context = 64, .threads = 1});
  REQUIRE(session.ok());
  const double expected = independent_perplexity(*session, tokens, 64, 5);
  CHECK(perplexity(r->nll) == Approx(expected).epsilon(1e-9));
  CHECK(perplexity(r->nll) > 1.0);
  CHECK(perplexity(r->nll) < 100.0);  // a story model on story-like text
  CHECK(perplexity_error(r->nll) > 0.0);
}

TEST_CASE("a model compared with its own saved logits diverges by exactly 0", "[eval][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::F32);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto tokens = perplexity_tokens(model->tokenizer(), story_text(40)).value();
  std::size_t progress_calls = 0;
  PerplexityOptions save{.window = 32, .max_windows = 3, .save_logits = tmp / "ref.bin"};
  save.on_window = [&](const PerplexityProgress& p) {
    ++progress_calls;
    CHECK(p.window == progress_calls);
    CHECK(p.windows == 3);
    CHECK(p.nll->count() == p.window * 15);
    return true;
  };
  auto saved = evaluate_perplexity(model, tokens, save, kOneThread);
  REQUIRE(saved.ok());
  CHECK(progress_calls == 3);

  auto reader = LogitsReader::open(tmp / "ref.bin");
  REQUIRE(reader.ok());
  CHECK(reader->info().window == 32);
  CHECK(reader->info().first == 16);
  CHECK(reader->info().rows == 15);
  CHECK(reader->info().vocab == 512);
  CHECK(reader->info().windows == 3);
  CHECK(reader->info().model.source_name == "stories260K");
  CHECK(reader->info().model.shape == model_shape(model->config()));

  // No window limit: only the 3 saved windows are compared.
  auto compared = evaluate_perplexity(
      model, tokens, {.window = 32, .reference_logits = tmp / "ref.bin"}, kOneThread);
  INFO((compared ? std::string() : compared.error().message));
  REQUIRE(compared.ok());
  CHECK(compared->windows == 3);
  CHECK(compared->kld.count() == 3 * 15);
  CHECK(compared->kld.mean() == 0.0);
  CHECK(compared->kld.percentile(99) == 0.0);
  CHECK(compared->same_top.fraction() == 1.0);
  CHECK(compared->reference_nll.mean() == Approx(saved->nll.mean()).epsilon(1e-12));
  CHECK(compared->nll.mean() == Approx(saved->nll.mean()).epsilon(1e-12));
}

TEST_CASE("a logits file from another text, window size or model is refused", "[eval][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::F32);
  auto model = open_or_fail(tmp / "m.qlm");
  const std::string text = story_text(40);
  const auto tokens = perplexity_tokens(model->tokenizer(), text).value();
  const auto ref = tmp / "ref.bin";
  REQUIRE(evaluate_perplexity(model, tokens, {.window = 32, .max_windows = 2, .save_logits = ref},
                              kOneThread)
              .ok());

  SECTION("another text") {
    const auto other = perplexity_tokens(model->tokenizer(), "Once upon a time. " + text).value();
    expect_error(
        evaluate_perplexity(model, other, {.window = 32, .reference_logits = ref}, kOneThread),
        ErrorCode::InvalidArgument, {ref.string(), "tokens differ", "window 0"});
  }
  SECTION("another window size") {
    expect_error(
        evaluate_perplexity(model, tokens, {.window = 48, .reference_logits = ref}, kOneThread),
        ErrorCode::InvalidArgument, {ref.string(), "32", "48"});
  }
  SECTION("another model") {
    // Same weights converted from a directory of another name: another source name.
    std::filesystem::create_directory_symlink(stories_dir(), tmp / "other-model");
    convert_or_fail(tmp / "other-model", tmp / "other.qlm", DType::Q8);
    auto other = open_or_fail(tmp / "other.qlm");
    expect_error(
        evaluate_perplexity(other, tokens, {.window = 32, .reference_logits = ref}, kOneThread),
        ErrorCode::InvalidArgument, {ref.string(), "stories260K", "other-model"});
  }
  SECTION("a truncated file") {
    const auto bytes = read_bytes(ref);
    write_bytes(ref, std::span(bytes).first(bytes.size() - 100));
    expect_error(
        evaluate_perplexity(model, tokens, {.window = 32, .reference_logits = ref}, kOneThread),
        ErrorCode::Format, {ref.string(), "truncated"});
  }
}

TEST_CASE("evaluate_perplexity refuses bad windows and leaves no partial logits file",
          "[eval][model]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q4);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto tokens = perplexity_tokens(model->tokenizer(), story_text(10)).value();
  const auto out = tmp / "out.bin";
  expect_error(evaluate_perplexity(model, tokens, {.window = 2, .save_logits = out}, kOneThread),
               ErrorCode::InvalidArgument, {"window of 2"});
  expect_error(evaluate_perplexity(model, tokens, {.window = 4096, .save_logits = out}, kOneThread),
               ErrorCode::InvalidArgument, {"fewer than one window of 4096"});
  PerplexityOptions cancel{.window = 16, .save_logits = out};
  cancel.on_window = [](const PerplexityProgress& p) { return p.window < 2; };
  expect_error(evaluate_perplexity(model, tokens, cancel, kOneThread), ErrorCode::Cancelled,
               {"after 2 of"});
  CHECK(list_dir(tmp.path()) == std::vector<std::string>{"m.qlm"});
  // Every weight type scores: q4 of a story model on story text is far from uniform (512).
  auto r = evaluate_perplexity(model, tokens, {.window = 16}, kOneThread);
  REQUIRE(r.ok());
  CHECK(perplexity(r->nll) < 100.0);
}

}  // namespace qlm::test
