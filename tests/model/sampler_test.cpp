// Sampler steps on hand-made logits with known answers.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>

#include "qlm/sampler.hpp"

namespace qlm {

TEST_CASE("greedy picks the argmax, honouring bias and penalties", "[sampler]") {
  const std::vector<float> logits{0.5f, 3.0f, 2.9f, -1.0f};
  Sampler greedy({.temperature = 0.0f});
  CHECK(greedy.sample(logits).value() == 1);
  Sampler biased({.temperature = 0.0f, .logit_bias = {{3, 10.0f}}});
  CHECK(biased.sample(logits).value() == 3);
  Sampler penalised({.temperature = 0.0f, .repeat_penalty = 1.1f});
  penalised.accept(1);  // 3.0 / 1.1 = 2.73 < 2.9
  CHECK(penalised.sample(logits).value() == 2);
  Sampler freq({.temperature = 0.0f, .presence_penalty = 0.05f, .frequency_penalty = 0.1f});
  freq.accept(2);
  freq.accept(2);  // 2.9 - 0.2 - 0.05
  CHECK(freq.sample(std::vector<float>{0.0f, 2.7f, 2.9f}).value() == 1);
}

TEST_CASE("penalty window forgets old tokens", "[sampler]") {
  Sampler s({.temperature = 0.0f, .repeat_penalty = 2.0f, .penalty_window = 2});
  s.accept(0);
  s.accept(5);
  s.accept(6);  // token 0 left the window
  CHECK(s.sample(std::vector<float>{1.0f, 0.9f}).value() == 0);
}

TEST_CASE("top-k 1 and tiny top-p are greedy and min-p removes the tail", "[sampler]") {
  const std::vector<float> logits{1.0f, 2.0f, 4.0f, 3.0f};
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Sampler k1({.temperature = 1.5f, .top_k = 1, .top_p = 1.0f, .min_p = 0.0f, .seed = seed});
    CHECK(k1.sample(logits).value() == 2);
    Sampler p({.temperature = 1.0f, .top_k = 0, .top_p = 0.01f, .min_p = 0.0f, .seed = seed});
    CHECK(p.sample(logits).value() == 2);
    // p(3)/p(2) = e^-1 = 0.37 >= 0.3 survives; p(1)/p(2) = e^-2 = 0.135 does not.
    Sampler m({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.3f, .seed = seed});
    const auto t = m.sample(logits).value();
    CHECK((t == 2 || t == 3));
  }
}

TEST_CASE("samples follow the softmax distribution at the given temperature", "[sampler]") {
  const std::vector<float> logits{0.0f, 1.0f, 2.0f};
  const float temp = 2.0f;
  Sampler s({.temperature = temp, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 9});
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits).value()];
  double z = 0.0;
  for (float l : logits) z += std::exp(l / temp);
  for (int id = 0; id < 3; ++id) {
    const double expect = std::exp(logits[static_cast<std::size_t>(id)] / temp) / z;
    const double got = static_cast<double>(counts[id]) / n;
    INFO("token " << id << " expected " << expect << " got " << got);
    CHECK(std::fabs(got - expect) < 0.015);  // > 4 standard deviations at n = 20000
  }
}

TEST_CASE("the chain order is configurable", "[sampler]") {
  // Temperature first flattens the distribution so min-p keeps more; min-p first keeps only 2.
  const std::vector<float> logits{0.0f, 2.0f};
  Sampler min_first({.temperature = 100.0f,
                     .top_k = 0,
                     .top_p = 1.0f,
                     .min_p = 0.5f,
                     .chain = {SamplerStep::MinP, SamplerStep::Temperature}});
  Sampler temp_first({.temperature = 100.0f,
                      .top_k = 0,
                      .top_p = 1.0f,
                      .min_p = 0.5f,
                      .chain = {SamplerStep::Temperature, SamplerStep::MinP}});
  bool saw_zero = false;
  for (int i = 0; i < 200; ++i) {
    CHECK(min_first.sample(logits).value() == 1);
    saw_zero |= temp_first.sample(logits).value() == 0;
  }
  CHECK(saw_zero);
}

}  // namespace qlm

namespace qlm {

TEST_CASE("the sampler always returns a valid id or a clear error", "[sampler]") {
  const std::vector<float> logits{1.0f, 2.0f, 0.5f};
  // min-p above 1 would drop every candidate: the most likely token stays.
  for (float temp : {0.0f, 1.0f}) {
    Sampler s({.temperature = temp, .min_p = 2.0f, .seed = 3});
    CHECK(s.sample(logits).value() == 1);
  }
  // NaN logits are never picked; greedy and sampled alike.
  const float nan = std::nanf("");
  for (float temp : {0.0f, 1.0f}) {
    Sampler s({.temperature = temp, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f});
    for (int i = 0; i < 50; ++i) {
      const auto id = s.sample(std::vector<float>{nan, 0.5f, nan, 0.4f});
      REQUIRE(id.ok());
      CHECK((*id == 1 || *id == 3));
    }
  }
  // +inf logits take all the probability; -inf ones (e.g. banned by logit_bias) none.
  Sampler inf({.temperature = 1.0f, .logit_bias = {{0, -INFINITY}}});
  CHECK(inf.sample(std::vector<float>{5.0f, INFINITY, 1.0f}).value() == 1);
  // Nothing pickable, no logits, or options out of range: errors, never an id.
  for (const auto& bad :
       {std::vector<float>{nan, nan}, std::vector<float>{-INFINITY}, std::vector<float>{}}) {
    Sampler s({.temperature = 1.0f});
    const auto r = s.sample(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::InvalidArgument);
  }
  for (const SamplerOptions& o :
       {SamplerOptions{.temperature = nan}, SamplerOptions{.top_p = nan},
        SamplerOptions{.min_p = -1.0f}, SamplerOptions{.repeat_penalty = 0.0f},
        SamplerOptions{.repeat_penalty = INFINITY}, SamplerOptions{.top_k = -1},
        SamplerOptions{.logit_bias = {{1, nan}}}}) {
    Sampler s(o);
    const auto r = s.sample(logits);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.starts_with("sample: "));
  }
}

}  // namespace qlm
