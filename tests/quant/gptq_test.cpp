// Error-feedback (GPTQ) quantization and the statistics it needs: the second moment an Importance
// collects, the inverse factor, and that feeding errors forward lowers the output error measured
// directly on activations (not through the quadratic form the quantizer itself minimizes).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "convert/mixed_recipe.hpp"
#include "qlm/detail/half.hpp"
#include "qlm/format/tensor_names.hpp"
#include "qlm/quant/importance.hpp"
#include "qlm/quant/layout.hpp"
#include "qlm/quant/quantize.hpp"
#include "quant/hessian.hpp"
#include "support/expect_error.hpp"
#include "support/quant_bounds.hpp"
#include "support/temp_dir.hpp"
#include "util/fail.hpp"

namespace {

using qlm::DType;
using qlm::quant::TileGeometry;

// n activation rows of width k with strongly correlated columns (a few shared factors plus noise)
// and uneven scales, as real layer inputs have.
std::vector<float> correlated_inputs(std::size_t n, std::size_t k, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr std::size_t kFactors = 4;
  std::vector<float> mix(kFactors * k), scale(k);
  for (float& v : mix) v = normal(rng);
  for (float& v : scale) v = std::exp(0.5f * normal(rng));
  std::vector<float> x(n * k);
  for (std::size_t t = 0; t < n; ++t) {
    float f[kFactors];
    for (float& v : f) v = normal(rng);
    for (std::size_t c = 0; c < k; ++c) {
      float v = 0.3f * normal(rng);
      for (std::size_t j = 0; j < kFactors; ++j) v += f[j] * mix[j * k + c];
      x[t * k + c] = v * scale[c];
    }
  }
  return x;
}

std::vector<float> second_moment(const std::vector<float>& x, std::size_t k) {
  const std::size_t n = x.size() / k;
  std::vector<float> h(k * k);
  for (std::size_t i = 0; i < k; ++i) {
    for (std::size_t j = 0; j < k; ++j) {
      double s = 0.0;
      for (std::size_t t = 0; t < n; ++t) s += static_cast<double>(x[t * k + i]) * x[t * k + j];
      h[i * k + j] = static_cast<float>(s / static_cast<double>(n));
    }
  }
  return h;
}

std::vector<float> random_weights(std::size_t rows, std::size_t k, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(rows * k);
  for (float& v : w) v = normal(rng);
  return w;
}

std::vector<std::uint8_t> quantize(DType t, const std::vector<float>& w, std::size_t rows,
                                   std::size_t k, qlm::quant::QuantizeOptions o) {
  std::vector<std::uint8_t> out(TileGeometry(t, rows, k).total_bytes());
  qlm::quant::quantize_matrix(t, w, rows, k, out, o);
  return out;
}

// Mean over activation rows of |W x - W_q x|^2, computed from the activations themselves.
double output_error(DType t, const std::vector<float>& w, const std::vector<std::uint8_t>& q,
                    std::size_t rows, std::size_t k, const std::vector<float>& x) {
  std::vector<float> wq(rows * k);
  for (std::size_t r = 0; r < rows; ++r) {
    qlm::quant::dequantize_row(t, q, rows, k, r, {&wq[r * k], k});
  }
  const std::size_t n = x.size() / k;
  double err = 0.0;
  for (std::size_t t2 = 0; t2 < n; ++t2) {
    for (std::size_t r = 0; r < rows; ++r) {
      double e = 0.0;
      for (std::size_t c = 0; c < k; ++c) e += (w[r * k + c] - wq[r * k + c]) * x[t2 * k + c];
      err += e * e;
    }
  }
  return err / static_cast<double>(n);
}

// The type of a matrix the plan keeps whole (one band).
DType whole(const qlm::detail::MixedPlan& plan, const std::string& name) {
  const auto& layout = plan.layouts.at(name);
  REQUIRE(layout.size() == 1);
  return layout.front().type;
}

}  // namespace

TEST_CASE("the inverse factor satisfies U^T U (H + damp I) = I", "[quant][gptq]") {
  const std::size_t k = 40;
  const auto h = second_moment(correlated_inputs(500, k, 1), k);
  const auto u = qlm::quant::gptq::inverse_cholesky_upper(h, k, 0.01);
  double mean_diag = 0.0;
  for (std::size_t i = 0; i < k; ++i) mean_diag += h[i * k + i];
  mean_diag /= static_cast<double>(k);
  for (std::size_t i = 0; i < k; ++i) {
    for (std::size_t j = 0; j < i; ++j) CHECK(u[i * k + j] == 0.0);  // upper triangular
  }
  double worst = 0.0;
  for (std::size_t i = 0; i < k; ++i) {
    for (std::size_t j = 0; j < k; ++j) {
      double s = 0.0;  // row i of (U^T U)(H + damp I)
      for (std::size_t p = 0; p < k; ++p) {
        double inv = 0.0;
        for (std::size_t q = 0; q <= std::min(i, p); ++q) inv += u[q * k + i] * u[q * k + p];
        s += inv * (h[p * k + j] + (p == j ? 0.01 * mean_diag : 0.0));
      }
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  }
  CHECK(worst < 1e-6);
}

TEST_CASE("error feedback lowers the output error on correlated inputs", "[quant][gptq]") {
  const std::size_t rows = 48, k = 96;  // k spans three blocks, so errors cross block borders
  const auto x = correlated_inputs(2000, k, 2);
  const auto h = second_moment(x, k);
  std::vector<float> imp(k);
  for (std::size_t c = 0; c < k; ++c) imp[c] = h[c * k + c];
  const auto w = random_weights(rows, k, 3);
  for (DType t : {DType::Q4, DType::Q4NL, DType::Q5, DType::Q8}) {
    INFO(qlm::to_string(t));
    const auto plain = quantize(t, w, rows, k, {.importance = imp});
    const auto gptq = quantize(t, w, rows, k, {.importance = imp, .hessian = h});
    const double e_plain = output_error(t, w, plain, rows, k, x);
    const double e_gptq = output_error(t, w, gptq, rows, k, x);
    INFO("output error: importance-weighted rounding " << e_plain << ", error feedback " << e_gptq);
    CHECK(e_gptq < 0.8 * e_plain);
    // The quadratic form the quantizer reports is the same error, up to float rounding.
    CHECK(qlm::quant::hessian_error(t, w, gptq, rows, k, h) == Approx(e_gptq).epsilon(1e-3));
  }
}

TEST_CASE("error feedback with a diagonal H is plain weighted rounding", "[quant][gptq]") {
  // U is then diagonal: no error is fed anywhere, so the bytes must be identical.
  const std::size_t rows = 33, k = 70;  // padding rows and a partial block
  const auto w = random_weights(rows, k, 4);
  std::vector<float> imp(k), h(k * k, 0.0f);
  for (std::size_t c = 0; c < k; ++c) h[c * k + c] = imp[c] = 0.5f + static_cast<float>(c % 7);
  for (DType t : {DType::Q4, DType::Q4NL, DType::Q5, DType::Q8}) {
    INFO(qlm::to_string(t));
    CHECK(quantize(t, w, rows, k, {.importance = imp}) ==
          quantize(t, w, rows, k, {.importance = imp, .hessian = h}));
  }
}

TEST_CASE("quantization gives the same bytes on any pool", "[quant][gptq]") {
  const std::size_t rows = 64, k = 64;
  const auto x = correlated_inputs(300, k, 5);
  const auto h = second_moment(x, k);
  const auto w = random_weights(rows, k, 6);
  const auto one = quantize(DType::Q4NL, w, rows, k, {.hessian = h});
  const auto pool = qlm::make_spin_pool(3);
  const auto three = quantize(DType::Q4NL, w, rows, k, {.hessian = h, .pool = pool.get()});
  CHECK(one == three);
  // Without error feedback too: tiles are independent of the pool.
  CHECK(quantize(DType::Q4, w, rows, k, {}) ==
        quantize(DType::Q4, w, rows, k, {.pool = pool.get()}));
}

TEST_CASE("a factor computed once gives the bytes of factoring per matrix", "[quant][gptq]") {
  // The converter factors each input's H once for q, k and v (gate and up).
  const std::size_t rows = 48, k = 96;
  const auto h = second_moment(correlated_inputs(400, k, 7), k);
  const std::vector<double> u = qlm::quant::gptq_factor(h, k);
  REQUIRE(u.size() == k * k);
  for (std::uint32_t seed : {8u, 9u}) {
    const auto w = random_weights(rows, k, seed);
    CHECK(quantize(DType::Q4, w, rows, k, {.hessian = h}) ==
          quantize(DType::Q4, w, rows, k, {.hessian = h, .hessian_factor = u}));
  }
  // A factor of the wrong size is not used: the hessian is factored as without one.
  const auto w = random_weights(rows, k, 10);
  const std::vector<double> wrong(k, 1.0);
  CHECK(quantize(DType::Q5, w, rows, k, {.hessian = h}) ==
        quantize(DType::Q5, w, rows, k, {.hessian = h, .hessian_factor = wrong}));
}

TEST_CASE("importance keeps E[x x^T] of narrow inputs and its file keeps it", "[quant][gptq]") {
  qlm::ModelConfig c;
  c.n_layers = 1;
  c.tie_word_embeddings = true;
  const std::size_t k = 12;
  const auto x = correlated_inputs(37, k, 7);
  qlm::Importance imp(c, 16);                                           // inputs up to 16 wide
  imp.observe(qlm::MatrixInput::Attention, 0, {x.data(), 20 * k}, 20);  // in two calls
  imp.observe(qlm::MatrixInput::Attention, 0, {x.data() + 20 * k, 17 * k}, 17);
  const std::vector<float> wide(3 * 20, 1.0f);
  imp.observe(qlm::MatrixInput::MlpHidden, 0, wide, 3);  // 20 wide: diagonal only
  const auto expected = second_moment(x, k);
  const auto q = qlm::layer_tensor(0, "self_attn.q_proj.weight");
  const auto m = imp.second_moment(q);
  REQUIRE(m.size() == k * k);
  for (std::size_t i = 0; i < k * k; ++i) CHECK(m[i] == Approx(expected[i]).margin(1e-6));
  CHECK(imp.second_moment(qlm::layer_tensor(0, "self_attn.k_proj.weight")).empty());  // under q
  CHECK(imp.second_moment(qlm::layer_tensor(0, "mlp.down_proj.weight")).empty());
  CHECK(imp.find(qlm::layer_tensor(0, "mlp.down_proj.weight")).size() == 20);

  CHECK(imp.token_counts().empty());
  c.vocab_size = 10;
  qlm::Importance counted(c);
  const std::vector<std::int32_t> ids{3, 3, 9, 0, 10, -1, 3};  // 10 and -1 are not tokens
  counted.count_tokens(ids);
  const std::vector<float> counts{1, 0, 0, 3, 0, 0, 0, 0, 0, 1};
  CHECK(std::ranges::equal(counted.token_counts(), counts));

  qlm::test::TempDir tmp;
  REQUIRE(imp.save(tmp / "imp.qlmi").ok());
  const auto loaded = qlm::Importance::load(tmp / "imp.qlmi");
  REQUIRE(loaded.ok());
  CHECK(std::ranges::equal(loaded->second_moment(q), m));
  CHECK(loaded->tensors() == imp.tensors());
  CHECK(loaded->token_counts().empty());
  REQUIRE(counted.save(tmp / "counted.qlmi").ok());
  const auto reloaded = qlm::Importance::load(tmp / "counted.qlmi");
  REQUIRE(reloaded.ok());
  CHECK(std::ranges::equal(reloaded->token_counts(), counts));
  CHECK(reloaded->tensors().empty());  // counts are not a matrix's statistics
}

TEST_CASE("the mixed recipe follows measured sensitivity over its estimate", "[quant][gptq]") {
  // Two same-size matrices: the estimate favours "a" (noisier at 4 bits), the measurement "b".
  const std::size_t rows = 32, k = 64;
  auto a = random_weights(rows, k, 8), b = random_weights(rows, k, 9);
  a[5] = 0.9f;  // an outlier coarsens a's block at 4 bits
  std::vector<qlm::detail::MixedCandidate> cands{{"a", rows, k, [a] { return a; }, {}},
                                                 {"b", rows, k, [b] { return b; }, {}}};
  const std::uint64_t q4 = TileGeometry(DType::Q4, rows, k).total_bytes();
  const std::uint64_t q8 = TileGeometry(DType::Q8, rows, k).total_bytes();
  // A budget for exactly one promotion.
  const double bits = 8.0 * static_cast<double>(q8 + q4) / static_cast<double>(2 * rows * k);
  const std::vector<DType> q8_only{DType::Q8};
  const auto est = qlm::detail::plan_mixed(cands, 0, 0, bits, DType::Q4, q8_only,
                                           qlm::quant::ScaleMethod::Fit, {}, 1);
  CHECK(whole(est, "a") == DType::Q8);
  CHECK(whole(est, "b") == DType::Q4);
  const auto meas =
      qlm::detail::plan_mixed(cands, 0, 0, bits, DType::Q4, q8_only, qlm::quant::ScaleMethod::Fit,
                              {{"a", {{DType::Q4, 0.01}}}, {"b", {{DType::Q4, 0.02}}}}, 1);
  CHECK(whole(meas, "a") == DType::Q4);
  CHECK(whole(meas, "b") == DType::Q8);
  CHECK(std::ranges::any_of(meas.reasons, [](const std::string& r) {
    return r.find("KL 2.00e-02 at q4 with only it quantized") != std::string::npos;
  }));
}

TEST_CASE("the mixed recipe climbs to q5 or q8, whichever removes more error per byte",
          "[quant][gptq][mixed]") {
  const std::size_t rows = 32, k = 64;
  const auto a = random_weights(rows, k, 10), b = random_weights(rows, k, 11);
  std::vector<qlm::detail::MixedCandidate> cands{{"a", rows, k, [a] { return a; }, {}},
                                                 {"b", rows, k, [b] { return b; }, {}}};
  const auto size = [&](DType t) {
    return static_cast<double>(TileGeometry(t, rows, k).total_bytes());
  };
  const double bits = 8.0 * (size(DType::Q8) + size(DType::Q4)) / static_cast<double>(2 * rows * k);
  const std::vector<DType> ladder{DType::Q8, DType::Q5};  // any order
  using qlm::detail::plan_mixed;
  using qlm::quant::ScaleMethod;
  // q5 removes three quarters of each matrix's KL for a quarter of q8's extra bytes: with room
  // for one q8, both matrices go to q5 instead (0.01 left in all, against 0.02).
  auto plan = plan_mixed(cands, 0, 0, bits, DType::Q4, ladder, ScaleMethod::Fit,
                         {{"a", {{DType::Q4, 0.02}, {DType::Q5, 0.005}}},
                          {"b", {{DType::Q4, 0.02}, {DType::Q5, 0.005}}}},
                         1);
  CHECK(whole(plan, "a") == DType::Q5);
  CHECK(whole(plan, "b") == DType::Q5);
  // Where q5 hardly helps a matrix, its bytes go straight to q8.
  plan = plan_mixed(cands, 0, 0, bits, DType::Q4, ladder, ScaleMethod::Fit,
                    {{"a", {{DType::Q4, 0.02}, {DType::Q5, 0.019}}},
                     {"b", {{DType::Q4, 0.01}, {DType::Q5, 0.009}}}},
                    1);
  CHECK(whole(plan, "a") == DType::Q8);
  CHECK(whole(plan, "b") == DType::Q4);
  // Without measurements the noise ratios decide; every choice fits the budget.
  plan = plan_mixed(cands, 0, 0, bits, DType::Q4, ladder, ScaleMethod::Fit, {}, 1);
  double total = 0.0;
  for (const auto& [name, layout] : plan.layouts) total += size(layout.at(0).type);
  CHECK(total <= size(DType::Q8) + size(DType::Q4));
  CHECK(whole(plan, "a") != DType::Q4);
  // q5 and q8 are the only promotions.
  const std::vector<DType> bad{DType::Q4NL};
  qlm::test::expect_error(qlm::detail::capture([&] {
                            return plan_mixed(cands, 0, 0, bits, DType::Q4, bad, ScaleMethod::Fit);
                          }),
                          qlm::ErrorCode::InvalidArgument, {"promoted to q5 or q8"});
}

TEST_CASE("the mixed recipe promotes the bands of rows that matter", "[quant][gptq][mixed]") {
  using qlm::detail::plan_mixed;
  using qlm::quant::ScaleMethod;
  const std::size_t rows = 128, k = 64;
  const auto w = random_weights(rows, k, 12);
  qlm::detail::MixedCandidate emb{"emb", rows, k, [w] { return w; }, {}};
  // Rows 64..95 are the tokens that occur; the rest hardly ever.
  emb.row_weights.assign(rows, 0.01);
  std::fill(emb.row_weights.begin() + 64, emb.row_weights.begin() + 96, 100.0);
  const std::vector<qlm::detail::MixedCandidate> cands{emb};
  const auto bytes = [&](DType t, std::size_t n) {
    return static_cast<double>(TileGeometry(t, n, k).total_bytes());
  };
  // Room for 32 rows at q8 and no more.
  const double bits =
      8.0 * (bytes(DType::Q4, rows) + bytes(DType::Q8, 32) - bytes(DType::Q4, 32)) / (rows * k);
  const std::vector<DType> q8{DType::Q8};
  const qlm::detail::MeasuredSensitivity kl{{"emb", {{DType::Q4, 0.05}}}};
  auto plan = plan_mixed(cands, 0, 0, bits, DType::Q4, q8, ScaleMethod::Fit, kl, 8);
  const qlm::detail::MatrixLayout& layout = plan.layouts.at("emb");
  REQUIRE(layout.size() == 3);  // runs of 16-row units at one type are one band
  CHECK((layout[0].row0 == 0 && layout[0].row1 == 64 && layout[0].type == DType::Q4));
  CHECK((layout[1].row0 == 64 && layout[1].row1 == 96 && layout[1].type == DType::Q8));
  CHECK((layout[2].row0 == 96 && layout[2].row1 == 128 && layout[2].type == DType::Q4));
  CHECK(qlm::test::contains(plan.reasons.front(), "rows 0-64 q4, 64-96 q8, 96-128 q4"));
  // Whole matrices only: the budget buys nothing.
  plan = plan_mixed(cands, 0, 0, bits, DType::Q4, q8, ScaleMethod::Fit, kl, 1);
  REQUIRE(plan.layouts.at("emb").size() == 1);
  CHECK(plan.layouts.at("emb").front().type == DType::Q4);
  // Row weights must match the rows.
  std::vector<qlm::detail::MixedCandidate> bad{emb};
  bad[0].row_weights.resize(100);
  qlm::test::expect_error(qlm::detail::capture([&] {
                            return plan_mixed(bad, 0, 0, bits, DType::Q4, q8, ScaleMethod::Fit);
                          }),
                          qlm::ErrorCode::InvalidArgument, {"emb", "128 rows", "100 row weights"});
}

TEST_CASE("each row's output error is what its own rounding adds, on any number of threads",
          "[quant][gptq]") {
  const std::size_t rows = 37, k = 40;  // a partial row group and a partial block
  const auto w = random_weights(rows, k, 13);
  const auto x = correlated_inputs(50, k, 14);
  const auto h = second_moment(x, k);
  const auto q = quantize(DType::Q4NL, w, rows, k, {});
  const auto one = qlm::quant::row_errors(DType::Q4NL, w, q, rows, k, {}, h);
  const auto three =
      qlm::quant::row_errors(DType::Q4NL, w, q, rows, k, {}, h, qlm::make_spin_pool(3).get());
  const auto plain = qlm::quant::row_errors(DType::Q4NL, w, q, rows, k, {}, {});
  CHECK(one == three);
  std::vector<float> deq(k);
  for (std::size_t r = 0; r < rows; ++r) {
    qlm::quant::dequantize_row(DType::Q4NL, q, rows, k, r, deq);
    double sq = 0.0, quad = 0.0;
    for (std::size_t i = 0; i < k; ++i) {
      const double ei = static_cast<double>(w[r * k + i]) - deq[i];
      sq += ei * ei;
      for (std::size_t j = 0; j < k; ++j)
        quad += ei * h[i * k + j] * (static_cast<double>(w[r * k + j]) - deq[j]);
    }
    CHECK(plain[r] == Approx(sq).epsilon(1e-9));
    CHECK(one[r] == Approx(quad).epsilon(1e-9));
  }
}

TEST_CASE("error feedback reaches every weight as a column-by-column loop does", "[quant][gptq]") {
  // The quantizer feeds a block's errors to the later columns in tiles of columns; each weight
  // must still receive e_j / u_jj * u_j,c for j = 0, 1, ... in turn, the same doubles as the
  // plain loop below, which rounds each column with the scale the quantizer stored.
  const std::size_t rows = 20, k = 100;  // padding rows, a partial block, a partial column tile
  const auto x = correlated_inputs(400, k, 21);
  const auto h = second_moment(x, k);
  const auto w = random_weights(rows, k, 22);
  const std::vector<double> u = qlm::quant::gptq::inverse_cholesky_upper(h, k);
  for (DType t : {DType::Q4, DType::Q4NL, DType::Q5, DType::Q8}) {
    INFO(qlm::to_string(t));
    const auto q = quantize(t, w, rows, k, {.hessian = h});
    const TileGeometry geo(t, rows, k);
    std::size_t differ = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      std::vector<float> got(k);
      qlm::quant::dequantize_row(t, q, rows, k, r, got);
      std::vector<double> wr(w.begin() + static_cast<std::ptrdiff_t>(r * k),
                             w.begin() + static_cast<std::ptrdiff_t>((r + 1) * k));
      for (std::size_t j = 0; j < k; ++j) {
        const std::uint8_t* s = q.data() + geo.scale_offset(r / 16, j / 32) + 2 * (r % 16);
        const float d = qlm::detail::f16_to_f32(static_cast<std::uint16_t>(s[0] | s[1] << 8));
        const float inv = d != 0.0f ? 1.0f / d : 0.0f;
        const float xj = static_cast<float>(wr[j]);
        const float level = qlm::test::grid_level(t, xj * inv);
        differ += got[j] != level * d;
        const double e = (xj - level * d) / u[j * k + j];
        for (std::size_t c = j + 1; c < k; ++c) wr[c] -= e * u[j * k + c];
      }
    }
    CHECK(differ == 0);
  }
}
