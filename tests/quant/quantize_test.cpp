// Q8/Q4 reference quantizers on awkward shapes: error bounds, padding, zero blocks and outliers,
// read back both through dequantize_row and directly through the documented tile layout.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <span>
#include <vector>

#include "qlm/detail/half.hpp"
#include "qlm/quant/layout.hpp"
#include "qlm/quant/quantize.hpp"
#include "support/quant_bounds.hpp"

namespace {

using qlm::DType;
using qlm::quant::TileGeometry;

std::vector<float> random_matrix(std::size_t rows, std::size_t k, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> x(rows * k);
  for (float& v : x) v = normal(rng);
  return x;
}

// Round-to-nearest unless told otherwise: the bound tests below are derived from its definition.
std::vector<std::uint8_t> quantize(DType t, std::span<const float> x, std::size_t rows,
                                   std::size_t k,
                                   qlm::quant::QuantizeOptions options = {
                                       .method = qlm::quant::ScaleMethod::Rtn}) {
  std::vector<std::uint8_t> out(TileGeometry(t, rows, k).total_bytes(), 0xA5);
  qlm::quant::quantize_matrix(t, x, rows, k, out, options);
  return out;
}

// Dequantizes one row into a buffer with guard values after k, and checks they were not touched.
std::vector<float> dequantize_row(DType t, std::span<const std::uint8_t> q, std::size_t rows,
                                  std::size_t k, std::size_t row) {
  constexpr float kGuard = 12345.0f;
  std::vector<float> buf(k + 40, kGuard);
  qlm::quant::dequantize_row(t, q, rows, k, row, std::span(buf).first(k));
  for (std::size_t i = k; i < buf.size(); ++i) REQUIRE(buf[i] == kGuard);
  buf.resize(k);
  return buf;
}

// Quantized level stored for (row, col) of the padded matrix (Q8: -127..127, Q4: 0..15 minus 8,
// Q5: nibble + 16 * fifth bit (byte 256 + 4r + c % 4, bit c / 4) minus 16).
int stored_level(DType t, std::span<const std::uint8_t> q, const TileGeometry& geo, std::size_t row,
                 std::size_t col) {
  const std::uint8_t* tile = q.data() + geo.quant_offset(row / 16, col / 32);
  const std::size_t r = row % 16, c = col % 32;
  if (t == DType::Q8) return static_cast<int>(tile[qlm::quant::q8_index(r, c)]) - 128;
  const std::uint8_t byte = tile[qlm::quant::q4_index(r, c)];
  const int nibble = qlm::quant::q4_high(c) ? byte >> 4 : byte & 0x0f;
  if (t == DType::Q5) return nibble + 16 * ((tile[256 + 4 * r + c % 4] >> (c / 4)) & 1) - 16;
  return t == DType::Q4 ? nibble - 8 : qlm::quant::kQ4nlLevels[static_cast<std::size_t>(nibble)];
}

float stored_scale(std::span<const std::uint8_t> q, const TileGeometry& geo, std::size_t row,
                   std::size_t block) {
  std::uint16_t h;
  std::memcpy(&h, q.data() + geo.scale_offset(row / 16, block) + 2 * (row % 16), 2);
  return qlm::detail::f16_to_f32(h);
}

}  // namespace

TEST_CASE("Q8/Q4 round trips stay within the block bounds on awkward shapes", "[quant]") {
  const DType t = GENERATE(DType::Q8, DType::Q4);
  const std::size_t rows = GENERATE(1, 15, 16, 17, 33);
  const std::size_t k = GENERATE(1, 31, 32, 33, 172, 200);
  INFO(qlm::to_string(t) << " [" << rows << ", " << k << "]");
  const auto x = random_matrix(rows, k, static_cast<std::uint32_t>(rows * 1000 + k));
  const auto q = quantize(t, x, rows, k);
  REQUIRE(q.size() == *qlm::tensor_bytes(t, std::vector<std::uint64_t>{rows, k}));
  const TileGeometry geo(t, rows, k);

  qlm::test::BoundCheck bc;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto xhat = dequantize_row(t, q, rows, k, r);
    qlm::test::check_quantized_row(t, std::span(x).subspan(r * k, k), xhat, bc);
    // dequantize_row is level * scale of the documented layout.
    for (std::size_t c = 0; c < k; ++c) {
      const float want =
          static_cast<float>(stored_level(t, q, geo, r, c)) * stored_scale(q, geo, r, c / 32);
      REQUIRE(xhat[c] == want);
    }
    // The stored scale magnitude is the f16-rounded amax / 127 (or / 8).
    for (std::size_t b = 0; b < geo.blocks; ++b) {
      const std::size_t n = std::min<std::size_t>(32, k - b * 32);
      const float d = qlm::test::block_scale_magnitude(t, std::span(x).subspan(r * k + b * 32, n));
      REQUIRE(std::fabs(stored_scale(q, geo, r, b)) == d);
    }
  }
  INFO("worst error/bound " << bc.worst << ", relative RMS " << bc.relative_rms());
  CHECK(bc.values == rows * k);
  CHECK(bc.violations == 0);

  // Padding (columns past k, rows past `rows`) holds level 0, and padding rows have scale 0.
  std::size_t bad_padding = 0;
  for (std::size_t row = 0; row < geo.groups * 16; ++row) {
    for (std::size_t col = 0; col < geo.padded_k(); ++col) {
      if (row < rows && col < k) continue;
      bad_padding += stored_level(t, q, geo, row, col) != 0;
    }
    if (row >= rows) {
      for (std::size_t b = 0; b < geo.blocks; ++b) bad_padding += stored_scale(q, geo, row, b) != 0;
    }
  }
  CHECK(bad_padding == 0);
}

TEST_CASE("all-zero blocks dequantize to exact zeros", "[quant]") {
  const DType t = GENERATE(DType::Q8, DType::Q4);
  const std::size_t rows = 3, k = 100;
  auto x = random_matrix(rows, k, 5);
  std::fill(x.begin() + 32, x.begin() + 64, 0.0f);    // row 0, block 1
  std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);  // all of row 1
  std::fill(x.begin() + 2 * k + 96, x.end(), -0.0f);  // row 2, partial last block
  const auto q = quantize(t, x, rows, k);
  auto zero = [](float v) { return v == 0.0f; };
  const auto r0 = dequantize_row(t, q, rows, k, 0);
  CHECK(std::all_of(r0.begin() + 32, r0.begin() + 64, zero));
  CHECK_FALSE(std::all_of(r0.begin(), r0.begin() + 32, zero));
  const auto r1 = dequantize_row(t, q, rows, k, 1);
  CHECK(std::all_of(r1.begin(), r1.end(), zero));
  const auto r2 = dequantize_row(t, q, rows, k, 2);
  CHECK(std::all_of(r2.begin() + 96, r2.end(), zero));
}

TEST_CASE("a block with one huge outlier keeps the outlier within its bound", "[quant]") {
  const DType t = GENERATE(DType::Q8, DType::Q4);
  const float outlier = GENERATE(1000.0f, -1000.0f, 3.0f, -0.75f);
  const std::size_t rows = 2, k = 64;
  auto x = random_matrix(rows, k, 9);
  x[k + 32 + 17] = outlier;  // row 1, block 1
  const auto q = quantize(t, x, rows, k);
  const auto xhat = dequantize_row(t, q, rows, k, 1);
  const float d = qlm::test::block_scale_magnitude(t, std::span(x).subspan(k + 32, 32));
  INFO(qlm::to_string(t) << " outlier " << outlier << " -> " << xhat[32 + 17] << ", d " << d);
  CHECK(std::fabs(xhat[32 + 17] - outlier) <= 0.5f * d);
  CHECK(std::fabs(xhat[32 + 17] - outlier) <= std::fabs(outlier) * 1e-3f);
  qlm::test::BoundCheck bc;
  qlm::test::check_quantized_row(t, std::span(x).subspan(k, k), xhat, bc);
  CHECK(bc.violations == 0);
  // The other block of the row is unaffected by the outlier.
  const auto x_first = std::span(x).subspan(k, 32);
  const float d0 = qlm::test::block_scale_magnitude(t, x_first);
  for (std::size_t c = 0; c < 32; ++c) CHECK(std::fabs(xhat[c] - x_first[c]) <= d0);
}

TEST_CASE("Q4 clamps only on the side opposite the block's extreme", "[quant]") {
  // The extreme +8 maps to level -8 with d = -1, so the other side reaches only level +7: -7.9
  // comes back as -7 (error 0.9 d), while values inside the range round to nearest.
  std::vector<float> x(32, 0.0f);
  x[0] = 8.0f;
  x[1] = -7.9f;
  x[2] = -7.4f;
  x[3] = 3.2f;
  const auto q = quantize(DType::Q4, x, 1, 32);
  const auto xhat = dequantize_row(DType::Q4, q, 1, 32, 0);
  CHECK(xhat[0] == 8.0f);
  CHECK(xhat[1] == -7.0f);
  CHECK(xhat[2] == -7.0f);
  CHECK(xhat[3] == 3.0f);
  // Mirrored: with the extreme negative, the positive side is the clamped one.
  for (float& v : x) v = -v;
  const auto q2 = quantize(DType::Q4, x, 1, 32);
  const auto xhat2 = dequantize_row(DType::Q4, q2, 1, 32, 0);
  CHECK(xhat2[0] == -8.0f);
  CHECK(xhat2[1] == 7.0f);
  CHECK(xhat2[2] == 7.0f);
  CHECK(xhat2[3] == -3.0f);
}

TEST_CASE("tile index functions map the 16x32 tile bijectively onto its bytes", "[quant]") {
  std::set<std::size_t> q8;
  std::set<std::pair<std::size_t, bool>> q4;
  for (std::size_t r = 0; r < qlm::kRowGroup; ++r) {
    for (std::size_t c = 0; c < qlm::kBlockK; ++c) {
      const std::size_t i8 = qlm::quant::q8_index(r, c);
      CHECK(i8 < qlm::tile_quant_bytes(DType::Q8));
      CHECK(i8 / 4 % 16 == r);  // a 32-bit lane holds one row
      q8.insert(i8);
      const std::size_t i4 = qlm::quant::q4_index(r, c);
      CHECK(i4 < qlm::tile_quant_bytes(DType::Q4));
      CHECK(i4 / 4 % 16 == r);
      q4.insert({i4, qlm::quant::q4_high(c)});
    }
  }
  CHECK(q8.size() == 512);
  CHECK(q4.size() == 512);  // 256 bytes x 2 nibbles
  // Q4: columns 8c+j (low nibble) and 8c+4+j (high nibble) share a byte.
  CHECK(qlm::quant::q4_index(5, 8 * 2 + 1) == qlm::quant::q4_index(5, 8 * 2 + 4 + 1));
  CHECK_FALSE(qlm::quant::q4_high(8 * 2 + 1));
  CHECK(qlm::quant::q4_high(8 * 2 + 4 + 1));
}

TEST_CASE("tile geometry places every tile and scale once, in the tensor's byte count", "[quant]") {
  for (DType t : {DType::Q8, DType::Q4}) {
    for (std::size_t rows : {1, 16, 17, 50}) {
      for (std::size_t k : {1, 32, 33, 172}) {
        const TileGeometry geo(t, rows, k);
        CHECK(geo.total_bytes() == *qlm::tensor_bytes(t, std::vector<std::uint64_t>{rows, k}));
        std::set<std::size_t> starts;
        for (std::size_t g = 0; g < geo.groups; ++g) {
          for (std::size_t b = 0; b < geo.blocks; ++b) {
            starts.insert(geo.quant_offset(g, b) / geo.quant_bytes);
            CHECK(geo.scale_offset(g, b) >= geo.tiles() * geo.quant_bytes);
            CHECK(geo.scale_offset(g, b) + qlm::kTileScaleBytes <= geo.total_bytes());
            starts.insert(geo.tiles() + (geo.scale_offset(g, b) - geo.tiles() * geo.quant_bytes) /
                                            qlm::kTileScaleBytes);
          }
        }
        CHECK(starts.size() == 2 * geo.tiles());
        CHECK(*starts.rbegin() == 2 * geo.tiles() - 1);
      }
    }
  }
}

TEST_CASE("tensor_bytes sizes valid shapes and rejects invalid ones", "[quant]") {
  using Shape = std::vector<std::uint64_t>;
  CHECK(qlm::tensor_bytes(DType::F32, Shape{3, 5}) == 60u);
  CHECK(qlm::tensor_bytes(DType::F16, Shape{3, 5}) == 30u);
  CHECK(qlm::tensor_bytes(DType::BF16, Shape{7}) == 14u);
  CHECK(qlm::tensor_bytes(DType::F32, Shape{2, 3, 4, 5}) == 480u);
  CHECK(qlm::tensor_bytes(DType::Q8, Shape{16, 32}) == 512u + 32u);
  CHECK(qlm::tensor_bytes(DType::Q4, Shape{16, 32}) == 256u + 32u);
  CHECK(qlm::tensor_bytes(DType::Q8, Shape{17, 33}) == 4u * (512u + 32u));
  CHECK(qlm::tensor_bytes(DType::Q4, Shape{1, 1}) == 256u + 32u);

  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q4}) {
    INFO(qlm::to_string(t));
    CHECK_FALSE(qlm::tensor_bytes(t, Shape{}).has_value());
    CHECK_FALSE(qlm::tensor_bytes(t, Shape{0, 4}).has_value());
    CHECK_FALSE(qlm::tensor_bytes(t, Shape{4, 0}).has_value());
    CHECK_FALSE(qlm::tensor_bytes(t, Shape{1, 1, 1, 1, 1}).has_value());
    CHECK_FALSE(qlm::tensor_bytes(t, Shape{1ull << 32, 1ull << 32}).has_value());
    CHECK_FALSE(qlm::tensor_bytes(t, Shape{~0ull, 2}).has_value());
    CHECK_FALSE(qlm::tensor_bytes(t, Shape{1ull << 40, 1ull << 40, 1ull << 40}).has_value());
  }
  CHECK_FALSE(qlm::tensor_bytes(DType::Q8, Shape{32}).has_value());
  CHECK_FALSE(qlm::tensor_bytes(DType::Q4, Shape{2, 16, 32}).has_value());
  CHECK(qlm::tensor_bytes(DType::F32, Shape{1ull << 48}) == 1ull << 50);
  CHECK_FALSE(qlm::tensor_bytes(DType::F32, Shape{(1ull << 48) + 1}).has_value());
}

namespace {

// Rows of a few distributions real weights show: Gaussian, heavy-tailed (Student-t like), and
// Gaussian with rare large outliers.
std::vector<float> awkward_matrix(std::size_t rows, std::size_t k, int kind, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::student_t_distribution<float> heavy(3.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> x(rows * k);
  for (float& v : x) {
    if (kind == 0) v = normal(rng);
    if (kind == 1) v = 0.01f * heavy(rng);
    if (kind == 2) v = unit(rng) < 0.01f ? 20.0f * normal(rng) : normal(rng);
  }
  return x;
}

std::vector<float> random_importance(std::size_t k, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::lognormal_distribution<float> spread(0.0f, 1.5f);  // a few columns matter much more
  std::vector<float> w(k);
  for (float& v : w) v = spread(rng);
  return w;
}

// Every stored level of a [rows, k] matrix, after checking that dequantize_row gives exactly
// level * scale for each (the format's decoding, read back independently).
std::vector<int> decoded_levels(DType t, std::span<const std::uint8_t> q, std::size_t rows,
                                std::size_t k) {
  const TileGeometry geo(t, rows, k);
  std::vector<int> levels;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto xhat = dequantize_row(t, q, rows, k, r);
    for (std::size_t c = 0; c < k; ++c) {
      levels.push_back(stored_level(t, q, geo, r, c));
      REQUIRE(xhat[c] == static_cast<float>(levels.back()) * stored_scale(q, geo, r, c / 32));
    }
  }
  return levels;
}

// The column of row `row`'s first block with the largest magnitude.
std::size_t first_block_extreme(std::span<const float> x, std::size_t k, std::size_t row) {
  std::size_t extreme = 0;
  for (std::size_t c = 0; c < 32; ++c) {
    if (std::fabs(x[row * k + c]) > std::fabs(x[row * k + extreme])) extreme = c;
  }
  return extreme;
}

}  // namespace

TEST_CASE("the fitted quantizer's error is never worse than round-to-nearest", "[quant]") {
  using qlm::quant::ScaleMethod;
  const DType t = GENERATE(DType::Q8, DType::Q4, DType::Q4NL, DType::Q5);
  const int kind = GENERATE(0, 1, 2);
  const bool weighted = GENERATE(false, true);
  const std::size_t rows = 37, k = 200;
  INFO(qlm::to_string(t) << " distribution " << kind << (weighted ? " weighted" : ""));
  const auto x = awkward_matrix(rows, k, kind, static_cast<std::uint32_t>(kind + 7));
  const auto imp = weighted ? random_importance(k, 3) : std::vector<float>{};
  const auto rtn = quantize(t, x, rows, k, {.method = ScaleMethod::Rtn});
  const auto fit = quantize(t, x, rows, k, {.method = ScaleMethod::Fit, .importance = imp});
  // Block by block (the search is per block), in the metric the search minimizes.
  std::size_t worse = 0;
  double total_rtn = 0.0, total_fit = 0.0;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto a = dequantize_row(t, rtn, rows, k, r);
    const auto b = dequantize_row(t, fit, rows, k, r);
    for (std::size_t c0 = 0; c0 < k; c0 += 32) {
      double ea = 0.0, eb = 0.0;
      for (std::size_t c = c0; c < std::min(k, c0 + 32); ++c) {
        const double w = imp.empty() ? 1.0 : imp[c];
        const double da = x[r * k + c] - a[c], db = x[r * k + c] - b[c];
        ea += w * da * da;
        eb += w * db * db;
      }
      worse += eb > ea;
      total_rtn += ea;
      total_fit += eb;
    }
  }
  INFO("squared error rtn " << total_rtn << " fit " << total_fit);
  CHECK(worse == 0);
  CHECK(total_fit <= total_rtn);
  // Q4 has room to improve: most on normal weights, least where outliers pin the scales.
  if (t == DType::Q4) CHECK(total_fit < (kind == 0 ? 0.92 : kind == 1 ? 0.97 : 0.99) * total_rtn);
  if (t == DType::Q4NL || t == DType::Q5) CHECK(total_fit < total_rtn);
  CHECK(qlm::quant::weighted_error(t, x, fit, rows, k, imp) == Approx(total_fit).epsilon(1e-6));
}

TEST_CASE("importance weighting moves error away from the columns that matter", "[quant]") {
  using qlm::quant::ScaleMethod;
  const std::size_t rows = 64, k = 128;
  const auto x = awkward_matrix(rows, k, 1, 11);
  std::vector<float> imp(k, 1.0f);
  for (std::size_t c = 0; c < k; c += 8) imp[c] = 100.0f;  // every 8th column dominates
  const auto plain = quantize(DType::Q4, x, rows, k, {.method = ScaleMethod::Fit});
  const auto aware =
      quantize(DType::Q4, x, rows, k, {.method = ScaleMethod::Fit, .importance = imp});
  const double e_plain = qlm::quant::weighted_error(DType::Q4, x, plain, rows, k, imp);
  const double e_aware = qlm::quant::weighted_error(DType::Q4, x, aware, rows, k, imp);
  INFO("importance-weighted error: plain fit " << e_plain << ", weighted fit " << e_aware);
  CHECK(e_aware < 0.9 * e_plain);
}

TEST_CASE("the fitted quantizer keeps zero blocks exact and padding at the level nearest zero",
          "[quant]") {
  const DType t = GENERATE(DType::Q8, DType::Q4, DType::Q4NL, DType::Q5);
  const std::size_t rows = 17, k = 45;
  auto x = awkward_matrix(rows, k, 2, 5);
  std::fill(x.begin(), x.begin() + k, 0.0f);  // row 0 all zero
  const auto q = quantize(t, x, rows, k, {.method = qlm::quant::ScaleMethod::Fit});
  const TileGeometry geo(t, rows, k);
  const auto r0 = dequantize_row(t, q, rows, k, 0);
  CHECK(std::all_of(r0.begin(), r0.end(), [](float v) { return v == 0.0f; }));
  // Padding stores the level nearest zero: 0, or Q4NL's smallest positive level (code 8).
  const int pad_level = t == DType::Q4NL ? qlm::quant::kQ4nlLevels[8] : 0;
  std::size_t bad_padding = 0;
  for (std::size_t row = 0; row < geo.groups * 16; ++row) {
    for (std::size_t col = 0; col < geo.padded_k(); ++col) {
      if (row < rows && col < k) continue;
      bad_padding += stored_level(t, q, geo, row, col) != pad_level;
    }
  }
  CHECK(bad_padding == 0);
}

TEST_CASE("Q4NL stores code book levels and beats evenly spaced 4-bit levels on normal weights",
          "[quant]") {
  using qlm::quant::ScaleMethod;
  const std::size_t rows = 48, k = 96;
  const auto x = awkward_matrix(rows, k, 0, 21);
  const auto nl = quantize(DType::Q4NL, x, rows, k, {.method = ScaleMethod::Fit});
  const auto q4 = quantize(DType::Q4, x, rows, k, {.method = ScaleMethod::Fit});
  REQUIRE(nl.size() == *qlm::tensor_bytes(DType::Q4NL, std::vector<std::uint64_t>{rows, k}));
  (void)decoded_levels(DType::Q4NL, nl, rows, k);
  // Round to nearest maps each block's extreme onto the code book's end exactly.
  const auto rtn = quantize(DType::Q4NL, x, rows, k);
  const auto row = dequantize_row(DType::Q4NL, rtn, rows, k, 5);
  const std::size_t extreme = first_block_extreme(x, k, 5);
  CHECK(row[extreme] == Approx(x[5 * k + extreme]).epsilon(1e-3));
  const double e_nl = qlm::quant::weighted_error(DType::Q4NL, x, nl, rows, k);
  const double e_q4 = qlm::quant::weighted_error(DType::Q4, x, q4, rows, k);
  INFO("squared error: q4 " << e_q4 << ", q4nl " << e_nl);
  CHECK(e_nl < 0.9 * e_q4);
}

TEST_CASE("Q5 stores 5-bit codes, rounds to nearest as Q5_0 does, and quarters Q4's error",
          "[quant][q5]") {
  using qlm::quant::ScaleMethod;
  const std::size_t rows = 40, k = 100;
  const auto x = awkward_matrix(rows, k, 0, 23);
  const auto q5 = quantize(DType::Q5, x, rows, k, {.method = ScaleMethod::Fit});
  const auto q4 = quantize(DType::Q4, x, rows, k, {.method = ScaleMethod::Fit});
  const TileGeometry geo(DType::Q5, rows, k);
  REQUIRE(geo.quant_bytes == 320);
  REQUIRE(q5.size() == *qlm::tensor_bytes(DType::Q5, std::vector<std::uint64_t>{rows, k}));
  const std::vector<int> levels = decoded_levels(DType::Q5, q5, rows, k);
  CHECK(std::ranges::all_of(levels, [](int l) { return l >= -16 && l <= 15; }));
  // Levels 0..15 have the fifth bit set: a normal block uses both halves.
  CHECK(std::ranges::count_if(levels, [](int l) { return l >= 0; }) >
        static_cast<std::ptrdiff_t>(rows * k / 4));
  // Round to nearest maps each block's extreme onto -16 exactly (d = extreme / -16).
  const auto rtn = quantize(DType::Q5, x, rows, k, {.method = ScaleMethod::Rtn});
  const auto row = dequantize_row(DType::Q5, rtn, rows, k, 7);
  const std::size_t extreme = first_block_extreme(x, k, 7);
  CHECK(stored_level(DType::Q5, rtn, geo, 7, extreme) == -16);
  CHECK(row[extreme] == Approx(x[7 * k + extreme]).epsilon(1e-3));
  // One more bit halves the step: about a quarter of the squared error.
  const double e5 = qlm::quant::weighted_error(DType::Q5, x, q5, rows, k);
  const double e4 = qlm::quant::weighted_error(DType::Q4, x, q4, rows, k);
  INFO("squared error: q4 " << e4 << ", q5 " << e5);
  CHECK(e5 < 0.32 * e4);
  CHECK(e5 > 0.15 * e4);
}

namespace {

// The scale search as docs/quantization.md describes it, written plainly: the candidates in order,
// every sum in column order, a later candidate kept only if strictly better. quantize_matrix
// runs it one candidate per vector lane and must still choose exactly these scales.
float plain_error(DType t, const float* x, const float* w, float d) {
  const float inv = d != 0.0f ? 1.0f / d : 0.0f;
  float err = 0.0f;
  for (std::size_t i = 0; i < 32; ++i) {
    const float e = x[i] - qlm::test::grid_level(t, x[i] * inv) * d;
    err += w[i] * e * e;
  }
  return err;
}

float round_f16(float d) {
  return qlm::detail::f16_to_f32(qlm::detail::f32_to_f16(d));
}

float plain_fit(DType t, const float* x, const float* w) {
  float max = 0.0f;
  for (std::size_t i = 0; i < 32; ++i) max = std::fabs(x[i]) > std::fabs(max) ? x[i] : max;
  float best_d = round_f16(t == DType::Q8   ? std::fabs(max) / 127.0f
                           : t == DType::Q4 ? max / -8.0f
                           : t == DType::Q5 ? max / -16.0f
                                            : max / -127.0f);
  float best = plain_error(t, x, w, best_d);
  if (max == 0.0f || best == 0.0f) return best_d;
  float best_target = 0.0f;
  auto consider = [&](float target) {
    float wxl = 0.0f, wll = 0.0f;
    for (std::size_t i = 0; i < 32; ++i) {
      const float l = qlm::test::grid_level(t, x[i] * (target / max));
      wxl += w[i] * x[i] * l;
      wll += w[i] * l * l;
    }
    const float d = round_f16(wll > 0.0f ? wxl / wll : 0.0f);
    if (!(std::fabs(d) <= 65504.0f)) return;
    const float err = plain_error(t, x, w, d);
    if (err < best) {
      best = err;
      best_d = d;
      best_target = target;
    }
  };
  struct Range {
    float lo, hi;
  };
  const std::vector<Range> ranges = t == DType::Q8     ? std::vector<Range>{{122, 127}}
                                    : t == DType::Q4NL ? std::vector<Range>{{-180, -95}, {95, 180}}
                                    : t == DType::Q5   ? std::vector<Range>{{-22, -13}, {13, 18}}
                                                       : std::vector<Range>{{-12, -6}, {6, 10}};
  const float step = t == DType::Q8 ? 1.0f : t == DType::Q4NL ? 5.0f : 0.5f;
  for (const Range& r : ranges) {
    for (float target = r.lo; target <= r.hi; target += step) consider(target);
  }
  if (best_target != 0.0f) {
    const float center = best_target;
    for (float f : {-0.375f, -0.25f, -0.125f, 0.125f, 0.25f, 0.375f}) consider(center + f * step);
  }
  return best_d;
}

}  // namespace

TEST_CASE("the fitted quantizer chooses exactly the plain search's scales", "[quant]") {
  const DType t = GENERATE(DType::Q8, DType::Q4, DType::Q4NL, DType::Q5);
  const int kind = GENERATE(0, 1, 2);
  const bool weighted = GENERATE(false, true);
  const std::size_t rows = 64, k = 256;
  INFO(qlm::to_string(t) << " distribution " << kind << (weighted ? " weighted" : ""));
  const auto x = awkward_matrix(rows, k, kind, static_cast<std::uint32_t>(kind + 11));
  const auto imp = weighted ? random_importance(k, 5) : std::vector<float>{};
  const auto fit =
      quantize(t, x, rows, k, {.method = qlm::quant::ScaleMethod::Fit, .importance = imp});
  std::size_t differ = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto got = dequantize_row(t, fit, rows, k, r);
    for (std::size_t c0 = 0; c0 < k; c0 += 32) {
      float w[32];
      for (std::size_t c = 0; c < 32; ++c) w[c] = imp.empty() ? 1.0f : imp[c0 + c];
      const float* xb = &x[r * k + c0];
      const float d = plain_fit(t, xb, w);
      const float inv = d != 0.0f ? 1.0f / d : 0.0f;
      for (std::size_t c = 0; c < 32; ++c)
        differ += got[c0 + c] != qlm::test::grid_level(t, xb[c] * inv) * d;
    }
  }
  CHECK(differ == 0);
}
