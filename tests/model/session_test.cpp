// Session behaviour on the real stories260K model: the exact greedy story, batched ==
// token-by-token evaluation, truncate() for prefix reuse, and the context limit.
#include <catch2/catch.hpp>

#include <thread>

#include "model/model_helpers.hpp"
#include "model_access.hpp"
#include "qlm/format/file_writer.hpp"
#include "qlm/generate.hpp"
#include "qlm/session.hpp"
#include "qlm/tokenizer/vocabulary.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

// The text ../shared/README.md gives for greedy decoding of stories260K from BOS.
const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

std::vector<float> copy(std::span<const float> s) {
  return {s.begin(), s.end()};
}

}  // namespace

TEST_CASE("greedy decoding of stories260K prints the reference story", "[model][session]") {
  TempDir tmp;
  const DType type = GENERATE(DType::F32, DType::F16, DType::BF16, DType::Q8);
  INFO("type " << to_string(type));
  convert_or_fail(stories_dir(), tmp / "m.qlm", type);
  auto model = open_or_fail(tmp / "m.qlm");
  auto session = Session::create(model, {.isa = "reference"});
  REQUIRE(session.ok());
  Sampler greedy({.temperature = 0.0f});
  const std::int32_t bos = model->tokenizer().bos();
  auto r = generate(*session, greedy, std::span(&bos, 1), {.max_tokens = 200});
  REQUIRE(r.ok());
  CHECK(r->text.starts_with(kStory));
}

TEST_CASE("one eval of N tokens equals N single-token evals", "[model][session]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids =
      model->tokenizer().encode("Once upon a time, a cat sat on a mat and smiled.").value();
  auto batched = Session::create(model, {.isa = "reference"});
  auto single = Session::create(model, {.isa = "reference"});
  REQUIRE((batched.ok() && single.ok()));
  const auto all = copy(*batched->eval(ids, {.all_logits = true}));
  const std::size_t vocab = model->config().vocab_size;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto one = single->eval(std::span(&ids[i], 1));
    REQUIRE(one.ok());
    CHECK(std::equal(one->begin(), one->end(), all.begin() + i * vocab));
  }
  CHECK(batched->position() == ids.size());
}

TEST_CASE("truncate rolls back the cache for prefix reuse", "[model][session]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::F32);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto a = model->tokenizer().encode("Once upon a time there was a dog").value();
  const auto b = model->tokenizer().encode("Once upon a time there was a frog named Tom").value();
  auto fresh = Session::create(model, {.isa = "reference"});
  auto reused = Session::create(model, {.isa = "reference"});
  REQUIRE((fresh.ok() && reused.ok()));
  const auto expect = copy(*fresh->eval(b));
  REQUIRE(reused->eval(a).ok());
  std::size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  REQUIRE(common > 1);
  REQUIRE(reused->truncate(static_cast<std::uint32_t>(common)).ok());
  CHECK(reused->position() == common);
  const auto got = reused->eval(std::span(b).subspan(common));
  REQUIRE(got.ok());
  CHECK(copy(*got) == expect);
  CHECK_FALSE(reused->truncate(1000).ok());
}

TEST_CASE("a deferred token is evaluated first by the next eval", "[model][session]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids = model->tokenizer().encode("Once upon a time there was a dog").value();
  const std::size_t vocab = model->config().vocab_size;
  auto plain = Session::create(model, {.isa = "reference"});
  auto deferred = Session::create(model, {.isa = "reference"});
  REQUIRE((plain.ok() && deferred.ok()));
  const auto expect = copy(*plain->eval(ids, {.all_logits = true}));

  REQUIRE(deferred->eval(std::span(ids).first(3)).ok());
  REQUIRE(deferred->defer(ids[3]).ok());
  CHECK(deferred->position() == 3);
  CHECK(deferred->pending().size() == 1);
  CHECK_FALSE(deferred->defer(-1).ok());
  // all_logits rows are the caller's tokens only.
  const auto got = deferred->eval(std::span(ids).subspan(4), {.all_logits = true});
  REQUIRE(got.ok());
  CHECK(got->size() == (ids.size() - 4) * vocab);
  CHECK(copy(*got) == std::vector<float>(expect.begin() + 4 * vocab, expect.end()));
  CHECK(deferred->position() == ids.size());
  CHECK(deferred->pending().empty());

  // An empty eval evaluates the pending token alone; truncate may keep or drop it.
  REQUIRE(deferred->truncate(3).ok());
  REQUIRE(deferred->defer(ids[3]).ok());
  REQUIRE(deferred->defer(ids[4]).ok());
  REQUIRE(deferred->truncate(4).ok());
  CHECK(deferred->pending().size() == 1);
  CHECK_FALSE(deferred->truncate(6).ok());
  const auto last = deferred->eval({});
  REQUIRE(last.ok());
  CHECK(copy(*last) == std::vector<float>(expect.begin() + 3 * vocab, expect.begin() + 4 * vocab));
  CHECK_FALSE(deferred->eval({}).ok());  // nothing pending, nothing given

  // A failed eval leaves the pending token where it was.
  auto small = Session::create(model, {.context = 4, .isa = "reference"});
  REQUIRE(small->eval(std::span(ids).first(3)).ok());
  REQUIRE(small->defer(ids[3]).ok());
  CHECK(small->defer(ids[4]).error().code == ErrorCode::ContextFull);
  CHECK(small->eval(std::span(ids).subspan(4, 1)).error().code == ErrorCode::ContextFull);
  CHECK(small->pending().size() == 1);
  CHECK(small->position() == 3);
}

TEST_CASE("the context limit is a clear error that leaves the session intact", "[model][session]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::F32);
  auto model = open_or_fail(tmp / "m.qlm");
  auto session = Session::create(model, {.context = 8, .isa = "reference"});
  REQUIRE(session.ok());
  const std::vector<std::int32_t> six{1, 403, 407, 261, 378, 300};
  REQUIRE(session->eval(six).ok());
  auto over = session->eval(six);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().code == ErrorCode::ContextFull);
  CHECK(session->position() == 6);
  auto bad = session->eval(std::vector<std::int32_t>{100000});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::InvalidArgument);
  CHECK(session->eval(std::vector<std::int32_t>{5, 6}).ok());
  CHECK(session->position() == 8);

  // generate() stops cleanly when the context fills up.
  auto s2 = Session::create(model, {.context = 10, .isa = "reference"});
  Sampler greedy({.temperature = 0.0f});
  auto r = generate(*s2, greedy, std::span(six.data(), 1), {.max_tokens = 50});
  REQUIRE(r.ok());
  CHECK(r->stop == StopReason::ContextFull);
  CHECK(r->tokens.size() == 10);
}

}  // namespace qlm::test

namespace qlm::test {

TEST_CASE("the tokenizer is built and validated by open, its keys decoded once",
          "[model][tokenizer]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  // Its keys are not held a second time in the decoded metadata ...
  for (const auto& [key, value] : detail::model_file(*model).metadata().entries()) {
    INFO(key);
    CHECK_FALSE(key.starts_with("tokenizer."));
  }
  CHECK(detail::model_file(*model).metadata().contains("model.vocab_size"));
  // ... but read back from the file, identical to what the converter stored (which a plain
  // ModelFile still decodes).
  auto file = format::ModelFile::open(tmp / "m.qlm");
  REQUIRE(file.ok());
  auto stored = load_vocabulary((*file)->metadata(), "m.qlm");
  REQUIRE(stored.ok());
  std::vector<const Tokenizer*> seen(4, nullptr);
  std::vector<std::vector<std::int32_t>> ids(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < seen.size(); ++t) {
    threads.emplace_back([&, t] {
      seen[t] = &model->tokenizer();
      ids[t] = seen[t]->encode("Once upon a time, there was a little girl.").value();
    });
  }
  for (auto& th : threads) th.join();
  for (std::size_t t = 0; t < seen.size(); ++t) {
    CHECK(seen[t] == seen[0]);
    CHECK(ids[t] == ids[0]);
  }
  CHECK(model->tokenizer().vocabulary() == *stored);
  CHECK(ids[0].size() > 5);

  // A file whose tokenizer is inconsistent fails at open, naming the file and the key.
  format::Metadata meta = (*file)->metadata();
  auto tokens = *meta.find<std::vector<std::string>>("tokenizer.tokens");
  tokens.push_back("extra");
  meta.set("tokenizer.tokens", tokens);
  std::vector<format::PendingTensor> tensors;
  for (const format::TensorInfo& t : (*file)->tensors()) {
    tensors.push_back({t.name, t.dtype, t.shape, [&file, &t](std::span<std::uint8_t> out) {
                         const auto bytes = (*file)->data(t);
                         std::copy(bytes.begin(), bytes.end(), out.begin());
                         return Result<void>{};
                       }});
  }
  REQUIRE(format::write_qlm_file(tmp / "bad.qlm", meta, tensors).ok());
  auto bad = Model::open(tmp / "bad.qlm");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::Format);
  CHECK_THAT(bad.error().message, Catch::Contains("bad.qlm") && Catch::Contains("tokenizer."));
}

TEST_CASE("a model read into memory computes what the mapped one does", "[model]") {
  TempDir tmp;
  const DType type = GENERATE(DType::Q4, DType::Q8, DType::F32);
  INFO("type " << to_string(type));
  convert_or_fail(stories_dir(), tmp / "m.qlm", type);
  auto mapped = open_or_fail(tmp / "m.qlm");
  auto read = Model::open(tmp / "m.qlm", {.mmap = false});
  REQUIRE(read.ok());
  const auto ids = story_tokens(*mapped);
  CHECK(eval_all_logits(*read, {.threads = 2}, ids) ==
        eval_all_logits(mapped, {.threads = 2}, ids));
  CHECK(read.value()->tokenizer().encode("Once upon a time").value() ==
        mapped->tokenizer().encode("Once upon a time").value());
}

}  // namespace qlm::test

namespace qlm::test {

TEST_CASE("a long evaluation reports progress and can be cancelled, leaving the session as it was",
          "[model][session]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids = pseudo_random_tokens(300);
  const bool reference = GENERATE(false, true);
  INFO("reference " << reference);
  auto s = Session::create(model, {.threads = 1, .isa = reference ? "reference" : "", .batch = 64});
  REQUIRE(s.ok());
  REQUIRE(s->eval(std::span(ids).first(10)).ok());
  std::vector<std::uint32_t> seen;
  auto cancelled = s->eval(std::span(ids).subspan(10, 150),
                           {.on_progress = [&](std::uint32_t done, std::uint32_t total) {
                             CHECK(total == 150);
                             seen.push_back(done);
                             return done < 100;
                           }});
  REQUIRE_FALSE(cancelled.ok());
  CHECK(cancelled.error().code == ErrorCode::Cancelled);
  CHECK(s->position() == 10);
  if (reference) {
    CHECK(seen.size() == 100);  // token by token
  } else {
    CHECK(seen == std::vector<std::uint32_t>{64, 128});  // chunk by chunk
  }
  // Nothing of the cancelled tokens remains: the same tokens now give the uncancelled logits.
  seen.clear();
  auto full = s->eval(std::span(ids).subspan(10, 150),
                      {.all_logits = true, .on_progress = [&](std::uint32_t d, std::uint32_t) {
                         seen.push_back(d);
                         return true;
                       }});
  REQUIRE(full.ok());
  const auto whole =
      eval_all_logits(model, {.threads = 1, .isa = reference ? "reference" : "", .batch = 64},
                      std::span(ids).first(160));
  const std::size_t vocab = model->config().vocab_size;
  CHECK(std::equal(full->begin(), full->end(), whole.begin() + 10 * vocab));
  // A callback that throws is an error, not a crash.
  auto threw = s->eval(std::span(ids).subspan(160, 100),
                       {.on_progress = [](std::uint32_t, std::uint32_t) -> bool {
                         throw std::runtime_error("no");
                       }});
  REQUIRE_FALSE(threw.ok());
  CHECK(threw.error().code == ErrorCode::Callback);
  CHECK(s->position() == 160);
}

}  // namespace qlm::test
