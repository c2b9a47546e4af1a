// The scoring arithmetic on hand-made logits with known answers: NLL, KL divergence, top token,
// and the mean / standard error / percentile / agreement accumulators.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "qlm/eval/perplexity.hpp"
#include "support/expect_error.hpp"

namespace qlm::test {

TEST_CASE("uniform logits over V give NLL ln V and perplexity V", "[eval][perplexity]") {
  const std::size_t vocab = GENERATE(1, 2, 7, 512, 32000);
  const std::vector<float> logits(vocab, 0.25f);
  ScoreStats nll;
  for (std::int32_t t : {0, static_cast<std::int32_t>(vocab - 1)}) {
    auto r = token_nll(logits, t);
    REQUIRE(r.ok());
    CHECK(*r == Approx(std::log(static_cast<double>(vocab))).margin(1e-12));
    nll.add(*r);
  }
  CHECK(perplexity(nll) == Approx(static_cast<double>(vocab)).epsilon(1e-12));
  CHECK(perplexity_error(nll) == Approx(0.0).margin(1e-9));
}

TEST_CASE("token_nll matches a hand computation", "[eval][perplexity]") {
  // softmax([0, ln 3]) = [1/4, 3/4]
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(3.0))};
  CHECK(*token_nll(logits, 0) == Approx(std::log(4.0)).epsilon(1e-7));
  CHECK(*token_nll(logits, 1) == Approx(std::log(4.0 / 3.0)).epsilon(1e-7));
}

TEST_CASE("KL divergence of two distributions matches a hand computation", "[eval][perplexity]") {
  // P = softmax([0, ln 3]) = [1/4, 3/4], Q = softmax([0, 0]) = [1/2, 1/2]:
  // KL(P || Q) = 1/4 ln(1/2) + 3/4 ln(3/2) = 3/4 ln 3 - ln 2; KL(Q || P) = ln 2 - 1/2 ln 3.
  const std::vector<float> p = {0.0f, static_cast<float>(std::log(3.0))};
  const std::vector<float> q = {0.0f, 0.0f};
  CHECK(*kl_divergence(p, q) == Approx(0.75 * std::log(3.0) - std::log(2.0)).epsilon(1e-6));
  CHECK(*kl_divergence(q, p) == Approx(std::log(2.0) - 0.5 * std::log(3.0)).epsilon(1e-6));
  // A token with (almost) no reference probability contributes nothing.
  const std::vector<float> r = {0.0f, 0.0f, -1e4f};
  const std::vector<float> s = {0.0f, 0.0f, 0.0f};
  CHECK(*kl_divergence(r, s) == Approx(std::log(1.5)).epsilon(1e-12));
}

TEST_CASE("KL divergence of identical logits is exactly 0", "[eval][perplexity]") {
  std::vector<float> logits(1000);
  for (std::size_t i = 0; i < logits.size(); ++i) {
    logits[i] = static_cast<float>(std::sin(static_cast<double>(i) * 0.37) * 12.0);
  }
  CHECK(*kl_divergence(logits, logits) == 0.0);
  const std::vector<float> copy = logits;
  CHECK(*kl_divergence(logits, copy) == 0.0);
}

TEST_CASE("scores do not change when a constant is added to every logit", "[eval][perplexity]") {
  std::vector<float> a(300), b(300), a_shifted(300), b_shifted(300);
  for (std::size_t i = 0; i < a.size(); ++i) {
    // Multiples of 1/64 so that adding 1024 is exact in float.
    a[i] = static_cast<float>(static_cast<int>(i * 37 % 101) - 50) / 64.0f;
    b[i] = static_cast<float>(static_cast<int>(i * 53 % 97) - 40) / 64.0f;
    a_shifted[i] = a[i] + 1024.0f;
    b_shifted[i] = b[i] - 512.0f;
  }
  CHECK(*token_nll(a_shifted, 17) == Approx(*token_nll(a, 17)).epsilon(1e-12));
  CHECK(*kl_divergence(a_shifted, b_shifted) == Approx(*kl_divergence(a, b)).epsilon(1e-9));
  CHECK(*kl_divergence(a, b) > 0.0);
  CHECK(top_token(a_shifted) == top_token(a));
}

TEST_CASE("huge logits stay finite", "[eval][perplexity]") {
  const std::vector<float> p = {1e4f, 0.0f, -1e4f, 9990.0f};
  const std::vector<float> q = {1e4f, 1e4f, -3e4f, 0.0f};
  const double nll = *token_nll(p, 3);
  CHECK(std::isfinite(nll));
  CHECK(nll == Approx(10.0 + std::log1p(std::exp(-10.0))).epsilon(1e-9));
  CHECK(*token_nll(p, 2) == Approx(2e4 + std::log1p(std::exp(-10.0))).epsilon(1e-12));
  const double kl = *kl_divergence(p, q);
  CHECK(std::isfinite(kl));
  // P = [1, 0, 0, e^-10] / (1 + e^-10), Q = [1/2, 1/2, 0, e^-1e4 / 2]; tokens 1 and 2 have no
  // probability under P and contribute nothing.
  const double lp0 = -std::log1p(std::exp(-10.0)), lp3 = -10.0 + lp0;
  const double lq0 = -std::log(2.0), lq3 = -1e4 - std::log(2.0);
  CHECK(kl == Approx(std::exp(lp0) * (lp0 - lq0) + std::exp(lp3) * (lp3 - lq3)).epsilon(1e-9));
}

TEST_CASE("scoring functions reject bad input", "[eval][perplexity]") {
  const std::vector<float> two = {1.0f, 2.0f};
  const std::vector<float> three = {1.0f, 2.0f, 3.0f};
  const std::vector<float> nan = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  const std::vector<float> inf = {1.0f, std::numeric_limits<float>::infinity()};
  expect_error(token_nll(two, 2), ErrorCode::InvalidArgument, {"target 2"});
  expect_error(token_nll(two, -1), ErrorCode::InvalidArgument, {"target -1"});
  expect_error(token_nll({}, 0), ErrorCode::InvalidArgument, {"target 0"});
  expect_error(token_nll(nan, 0), ErrorCode::InvalidArgument, {"not finite"});
  expect_error(kl_divergence(two, three), ErrorCode::InvalidArgument, {"2", "3"});
  expect_error(kl_divergence(inf, two), ErrorCode::InvalidArgument, {"reference", "not finite"});
  expect_error(kl_divergence({}, {}), ErrorCode::InvalidArgument, {"no logits"});
}

TEST_CASE("top_token picks the first largest logit", "[eval][perplexity]") {
  CHECK(top_token({}) == -1);
  CHECK(top_token(std::vector<float>{3.0f, 5.0f, 5.0f, -1.0f}) == 1);
  CHECK(top_token(std::vector<float>{std::nanf(""), -2.0f, -3.0f}) == 1);
}

TEST_CASE("ScoreStats: mean, standard error and percentiles of a known set", "[eval][perplexity]") {
  ScoreStats s;
  CHECK(std::isnan(s.mean()));
  CHECK(std::isnan(s.standard_error()));
  CHECK(std::isnan(s.percentile(99.0)));
  for (int i = 100; i >= 1; --i) s.add(i);  // 1 … 100, in descending order
  CHECK(s.count() == 100);
  CHECK(s.mean() == Approx(50.5).epsilon(1e-15));
  // sample variance of 1..100 = 100 * 101 / 12; standard error = sqrt(var / 100)
  CHECK(s.standard_error() == Approx(std::sqrt(101.0 / 12.0)).epsilon(1e-12));
  CHECK(s.percentile(99.0) == Approx(99.01).epsilon(1e-12));  // numpy.percentile(1..100, 99)
  CHECK(s.percentile(50.0) == Approx(50.5).epsilon(1e-12));
  CHECK(s.percentile(0.0) == 1.0);
  CHECK(s.percentile(100.0) == 100.0);
  CHECK(std::isnan(s.percentile(101.0)));

  ScoreStats one;
  one.add(3.5);
  CHECK(one.mean() == 3.5);
  CHECK(one.percentile(99.0) == 3.5);
  CHECK(std::isnan(one.standard_error()));

  // Welford keeps a large common offset from destroying the variance.
  ScoreStats offset;
  for (double v : {1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0}) offset.add(v);
  CHECK(offset.standard_error() == Approx(std::sqrt(30.0 / 4.0)).epsilon(1e-9));
}

TEST_CASE("AgreementStats: fraction and binomial error", "[eval][perplexity]") {
  AgreementStats a;
  CHECK(std::isnan(a.fraction()));
  for (int i = 0; i < 100; ++i) a.add(i % 4 != 0);  // 75 of 100
  CHECK(a.count() == 100);
  CHECK(a.agreed() == 75);
  CHECK(a.fraction() == 0.75);
  CHECK(a.standard_error() == Approx(std::sqrt(0.75 * 0.25 / 99.0)).epsilon(1e-12));
  AgreementStats all;
  for (int i = 0; i < 10; ++i) all.add(true);
  CHECK(all.fraction() == 1.0);
  CHECK(all.standard_error() == 0.0);
}

}  // namespace qlm::test
