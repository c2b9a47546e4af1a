// The fast forward path against the fp32 reference path: logits within a per-type tolerance on
// every ISA this CPU runs, identical greedy q8 text up to the reference's first near-tie,
// bit-identical results for any thread count and any prompt chunking.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "kernel_table.hpp"
#include "model/model_helpers.hpp"
#include "qlm/generate.hpp"
#include "qlm/session.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {

TEST_CASE("fast path logits agree with the reference path", "[model][fast]") {
  TempDir tmp;
  const DType type =
      GENERATE(DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q4, DType::Q4NL, DType::Q5);
  convert_or_fail(stories_dir(), tmp / "m.qlm", type);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids = story_tokens(*model);
  const auto ref = eval_all_logits(model, {.isa = "reference"}, ids);
  // Float weights see the same math up to summation order; quantized weights also see int8
  // activations (relative error ~1/254 per block), which compounds over 5 layers.
  const float tolerance = is_quantized(type) ? 0.02f : 1e-5f;
  for (auto isa : kernels::supported_isas()) {
    INFO("type " << to_string(type) << ", isa " << kernels::to_string(isa));
    const auto fast = eval_all_logits(model, {.isa = std::string(kernels::to_string(isa))}, ids);
    const float diff = relative_max_diff(fast, ref);
    INFO("max |fast - reference| / logit range = " << diff);
    CHECK(diff <= tolerance);
  }
}

TEST_CASE("fast path: greedy q8 text equals the reference path's up to the first near-tie",
          "[model][fast]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  const std::int32_t bos = model->tokenizer().bos();
  // With one int8 pass per input the q8 fast path moved the gap between the reference's top two
  // logits by up to 0.22 (measured over these 120 tokens on every ISA); the default two passes
  // move it far less. Where the reference's own gap is far smaller, the two tokens are tied for any
  // practical purpose and which one a path picks depends on float rounding order alone (any change
  // to summation order or exp may flip it), so the texts are compared up to the first gap below
  // 0.05: token 71 of stories260K (gap 0.011; 0.020 at token 114; the next smallest are 0.092 at 61
  // and 0.11 at 27).
  std::size_t decided = 0;
  {
    auto s = Session::create(model, {.isa = "reference"});
    REQUIRE(s.ok());
    std::int32_t token = bos;
    for (; decided < 120; ++decided) {
      const auto l = s->eval(std::span(&token, 1));
      REQUIRE(l.ok());
      std::vector<float> v(l->begin(), l->end());
      const auto top = std::max_element(v.begin(), v.end());
      token = static_cast<std::int32_t>(top - v.begin());
      const float best = *top;
      *top = -INFINITY;
      if (best - *std::max_element(v.begin(), v.end()) < 0.05f) break;
    }
  }
  INFO("greedy tokens before the first near-tie: " << decided);
  REQUIRE(decided >= 50);
  auto text = [&](SessionOptions o) {
    auto s = Session::create(model, std::move(o));
    REQUIRE(s.ok());
    Sampler greedy({.temperature = 0.0f});
    return generate(*s, greedy, std::span(&bos, 1),
                    {.max_tokens = static_cast<std::int32_t>(decided)})
        ->text;
  };
  const std::string expected = text({.isa = "reference"});
  for (auto isa : kernels::supported_isas()) {
    INFO("isa " << kernels::to_string(isa));
    CHECK(text({.isa = std::string(kernels::to_string(isa))}) == expected);
  }
}

TEST_CASE("fast path is bit-identical for 1, 2 and 3 threads and any chunking", "[model][fast]") {
  TempDir tmp;
  // Q8 under Auto splits every input into two int8 passes; Q4 under Int8x2 does too.
  const auto [type, act] =
      GENERATE(table<DType, ActivationPrecision>({{DType::Q8, ActivationPrecision::Auto},
                                                  {DType::Q8, ActivationPrecision::Int8},
                                                  {DType::Q4, ActivationPrecision::Auto},
                                                  {DType::Q4, ActivationPrecision::Int8x2},
                                                  {DType::F16, ActivationPrecision::Auto}}));
  INFO("type " << to_string(type) << ", activations " << to_string(act));
  convert_or_fail(stories_dir(), tmp / "m.qlm", type);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids = story_tokens(*model);
  const auto one = eval_all_logits(model, {.pool = make_openmp_pool(1), .activations = act}, ids);
  CHECK(eval_all_logits(model, {.pool = make_openmp_pool(2), .activations = act}, ids) == one);
  CHECK(eval_all_logits(model, {.pool = make_openmp_pool(3), .activations = act}, ids) == one);
  CHECK(eval_all_logits(model, {.pool = make_openmp_pool(2), .batch = 7, .activations = act},
                        ids) == one);
  CHECK(eval_all_logits(model, {.pool = make_spin_pool(2), .activations = act}, ids) == one);
  CHECK(eval_all_logits(model, {.pool = make_spin_pool(3), .batch = 7, .activations = act}, ids) ==
        one);
  // Token by token (the GEMV path) gives the same bits as the batched GEMM path.
  auto s = Session::create(model, {.pool = make_spin_pool(2), .activations = act});
  REQUIRE(s.ok());
  const std::size_t vocab = model->config().vocab_size;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto l = s->eval(std::span(&ids[i], 1));
    REQUIRE(l.ok());
    CHECK(std::equal(l->begin(), l->end(), one.begin() + i * vocab));
  }
}

TEST_CASE("forcing an ISA the CPU lacks is an error", "[model][fast]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  for (std::string isa : {"neon", "avx512vnni", "avx2", "sse9000"}) {
    const auto parsed = kernels::parse_isa(isa);
    if (parsed && kernels::is_supported(*parsed)) continue;
    auto s = Session::create(model, {.isa = isa});
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::Unsupported);
    CHECK(s.error().message.find(isa) != std::string::npos);
  }
  auto ok = Session::create(model, {.isa = "scalar"});
  REQUIRE(ok.ok());
  CHECK(ok->isa() == "scalar");
}

}  // namespace qlm::test
