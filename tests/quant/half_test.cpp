// f16 and bf16 conversions checked exhaustively (f16 -> f32), against GCC's _Float16 (f32 -> f16)
// and against a double-precision round-to-nearest-even reference (f32 -> bf16).
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "qlm/detail/half.hpp"

namespace {

using qlm::detail::bf16_to_f32;
using qlm::detail::f16_to_f32;
using qlm::detail::f32_to_bf16;
using qlm::detail::f32_to_f16;

bool f16_is_nan(std::uint16_t h) {
  return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
}
bool bf16_is_nan(std::uint16_t h) {
  return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
}

// GCC's own conversion (libgcc / F16C), independent of qlm's bit manipulation.
std::uint16_t gcc_f32_to_f16(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  std::uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

float gcc_f16_to_f32(std::uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

// Magnitude of a non-negative bf16 bit pattern as a double; exponent 255 with mantissa 0 gives
// 2^128, the value where rounding to infinity starts.
double bf16_magnitude(std::uint32_t bits) {
  const int e = static_cast<int>((bits >> 7) & 0xffu);
  const double m = bits & 0x7fu;
  return e == 0 ? std::ldexp(m, -133) : std::ldexp(128.0 + m, e - 134);
}

// Round-to-nearest-even of a finite float to bf16, decided with exact double arithmetic.
std::uint16_t bf16_reference(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t lo = (u & 0x7fffffffu) >> 16;  // the bf16 at or below |f|
  if (std::isinf(f)) return static_cast<std::uint16_t>(sign | lo);
  const double a = std::fabs(static_cast<double>(f));
  const double below = a - bf16_magnitude(lo), above = bf16_magnitude(lo + 1) - a;
  std::uint32_t pick = lo;
  if (above < below || (above == below && (lo & 1u) != 0)) pick = lo + 1;
  return static_cast<std::uint16_t>(sign | pick);
}

// Floats covering every exponent (sign, 256 exponents, random mantissas) plus special values.
std::vector<float> sample_floats(std::size_t per_exponent) {
  std::mt19937 rng(12345);
  std::vector<float> out;
  for (std::uint32_t sign = 0; sign < 2; ++sign) {
    for (std::uint32_t e = 0; e < 256; ++e) {
      for (std::size_t i = 0; i < per_exponent; ++i) {
        const std::uint32_t man = rng() & 0x7fffffu;
        out.push_back(std::bit_cast<float>(sign << 31 | e << 23 | man));
      }
    }
  }
  for (float v : {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e-8f, 2.98023224e-8f,
                  5.96046448e-8f, 6.09755516e-5f, 6.10351562e-5f, HUGE_VALF, -HUGE_VALF}) {
    out.push_back(v);
    out.push_back(std::nextafter(v, 0.0f));
    out.push_back(std::nextafter(v, HUGE_VALF));
  }
  return out;
}

}  // namespace

TEST_CASE("every f16 value converts to f32 exactly and back unchanged", "[quant]") {
  std::size_t bad_roundtrip = 0, bad_vs_gcc = 0, nans = 0;
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<std::uint16_t>(i);
    const float f = f16_to_f32(h);
    const float g = gcc_f16_to_f32(h);
    if (f16_is_nan(h)) {
      ++nans;
      bad_roundtrip += !f16_is_nan(f32_to_f16(f)) || !std::isnan(f);
      bad_roundtrip += std::signbit(f) != ((h & 0x8000u) != 0);
      bad_vs_gcc += !std::isnan(g);
      continue;
    }
    bad_roundtrip += f32_to_f16(f) != h;
    bad_vs_gcc += std::bit_cast<std::uint32_t>(f) != std::bit_cast<std::uint32_t>(g);
  }
  CHECK(nans == 2 * 1023);
  CHECK(bad_roundtrip == 0);
  CHECK(bad_vs_gcc == 0);
}

TEST_CASE("f32 -> f16 rounds like GCC's _Float16 conversion", "[quant]") {
  std::vector<float> xs = sample_floats(2000);  // ~1e6 values, all exponents
  // Exact ties: the midpoint between every pair of adjacent finite f16 values (and its
  // neighbours), normal and subnormal, both signs; the last one ties to infinity.
  for (std::uint32_t h = 0; h < 0x7c00u; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      const float lo = f16_to_f32(static_cast<std::uint16_t>(h | sign));
      const float hi = h + 1 == 0x7c00u ? (sign ? -65536.0f : 65536.0f)
                                        : f16_to_f32(static_cast<std::uint16_t>((h + 1) | sign));
      const float mid = (lo + hi) / 2;  // exact: 12 significant bits
      xs.push_back(mid);
      xs.push_back(std::nextafter(mid, 0.0f));
      xs.push_back(std::nextafter(mid, HUGE_VALF));
    }
  }
  std::size_t mismatches = 0;
  float first_bad = 0.0f;
  for (float x : xs) {
    const std::uint16_t got = f32_to_f16(x), want = gcc_f32_to_f16(x);
    const bool ok =
        std::isnan(x) ? f16_is_nan(got) && (got & 0x8000u) == (want & 0x8000u) : got == want;
    if (!ok && mismatches++ == 0) first_bad = x;
  }
  INFO(xs.size() << " values; first mismatch at " << first_bad << " (bits 0x" << std::hex
                 << std::bit_cast<std::uint32_t>(first_bad) << ")");
  CHECK(xs.size() > 1000000);
  CHECK(mismatches == 0);
  CHECK(f32_to_f16(65519.0f) == 0x7bffu);  // below the tie: the largest finite f16
  CHECK(f32_to_f16(65520.0f) == 0x7c00u);  // the tie rounds to even, which is infinity
  CHECK(f32_to_f16(-1e9f) == 0xfc00u);
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000u);                        // tie to even: 0
  CHECK(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001u);  // above the tie
  CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002u);                        // 1.5 ulp -> 2
}

TEST_CASE("f32 -> bf16 rounds to nearest even (double-precision reference)", "[quant]") {
  std::vector<float> xs = sample_floats(2000);
  std::mt19937 rng(777);
  for (int i = 0; i < 100000; ++i) {  // exact ties and their neighbours
    const std::uint32_t bits = (rng() & 0xffff0000u) | 0x8000u;
    const float x = std::bit_cast<float>(bits);
    xs.push_back(x);
    xs.push_back(std::bit_cast<float>(bits - 1));
    xs.push_back(std::bit_cast<float>(bits + 1));
  }
  std::size_t mismatches = 0, nan_mismatches = 0;
  float first_bad = 0.0f;
  for (float x : xs) {
    const std::uint16_t got = f32_to_bf16(x);
    if (std::isnan(x)) {
      nan_mismatches += !bf16_is_nan(got) || std::signbit(bf16_to_f32(got)) != std::signbit(x);
      continue;
    }
    if (got != bf16_reference(x) && mismatches++ == 0) first_bad = x;
  }
  INFO("first mismatch at bits 0x" << std::hex << std::bit_cast<std::uint32_t>(first_bad));
  CHECK(mismatches == 0);
  CHECK(nan_mismatches == 0);
  // Every bf16 value converts to f32 and back unchanged.
  std::size_t bad_roundtrip = 0;
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<std::uint16_t>(i);
    const std::uint16_t back = f32_to_bf16(bf16_to_f32(h));
    bad_roundtrip += bf16_is_nan(h) ? !bf16_is_nan(back) : back != h;
  }
  CHECK(bad_roundtrip == 0);
  CHECK(f32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80u);  // rounds up to infinity
}
