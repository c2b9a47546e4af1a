// Every supported kernel ISA against the scalar table, and the scalar table against dequantized
// float math; plus determinism, fp32 helpers and ISA dispatch.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "float_gemm_check.hpp"
#include "gptq_check.hpp"
#include "kernel_check.hpp"
#include "kernel_table.hpp"
#include "scale_search_check.hpp"

namespace {

using namespace qlm::kernels;

void require_ok(const check::Report& rep) {
  for (const auto& e : rep.errors) FAIL_CHECK(e);
  CHECK(rep.ok());
}

}  // namespace

TEST_CASE("scalar kernels match dequantized float math", "[kernels]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  REQUIRE(scalar.isa == Isa::Scalar);
  require_ok(check::check_all_gemm(scalar, nullptr));
}

TEST_CASE("every supported ISA matches the scalar kernels", "[kernels]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    const KernelTable& t = kernels_for(isa);
    REQUIRE(t.isa == isa);
    require_ok(check::check_all_gemm(t, &scalar));
  }
}

TEST_CASE("float-weight GEMM: scalar twin against double, every ISA against it, any split",
          "[kernels][float]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  require_ok(check::check_all_float_gemm(scalar, nullptr));
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_all_float_gemm(kernels_for(isa), nullptr));
    require_ok(check::check_all_float_gemm(kernels_for(isa), &scalar));
  }
}

TEST_CASE("Q4NL and Q5 kernels decode every code exactly on every ISA", "[kernels][q4nl][q5]") {
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_codebook(kernels_for(isa), qlm::DType::Q4NL));
    require_ok(check::check_codebook(kernels_for(isa), qlm::DType::Q5));
  }
}

TEST_CASE("fp32 helpers match their scalar twins", "[kernels]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_float_helpers(kernels_for(isa), scalar));
  }
}

TEST_CASE("the int8x2 residual is x - q * d rounded once, the same bits on every ISA",
          "[kernels][int8x2]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_act_residual(kernels_for(isa), scalar));
  }
}

TEST_CASE("the block scale search chooses the scalar twin's scale on every ISA",
          "[kernels][quant]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_fit_scale(kernels_for(isa), scalar));
  }
}

TEST_CASE("GPTQ's block update leaves the scalar twin's bits on every ISA", "[kernels][quant]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_gptq_update(kernels_for(isa), scalar));
  }
}

TEST_CASE("f16 conversions are bit-exact on every ISA", "[kernels][f16]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_half(kernels_for(isa), scalar));
  }
}

TEST_CASE("scalar attention blocks match a double-precision softmax", "[kernels][attention]") {
  require_ok(check::check_attention(kernels_for(Isa::Scalar), nullptr));
}

TEST_CASE("attention blocks match the scalar twin on every ISA", "[kernels][attention]") {
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  for (Isa isa : supported_isas()) {
    INFO("isa " << to_string(isa));
    require_ok(check::check_attention(kernels_for(isa), &scalar));
  }
}

TEST_CASE("ISA names round-trip and dispatch refuses what the CPU lacks", "[kernels]") {
  for (std::size_t i = 0; i < kIsaCount; ++i) {
    const Isa isa = static_cast<Isa>(i);
    INFO("isa " << to_string(isa));
    REQUIRE(parse_isa(to_string(isa)) == isa);
    const IsaChoice c = choose_isa(to_string(isa));
    if (is_supported(isa)) {
      CHECK(c.error.empty());
      CHECK(c.isa == isa);
      CHECK(kernels_for(isa).isa == isa);
    } else {
      CHECK_FALSE(c.error.empty());
      CHECK(kernels_for(isa).isa == Isa::Scalar);
    }
  }
  CHECK_FALSE(parse_isa("AVX2").has_value());
  CHECK_FALSE(choose_isa("sse9").error.empty());
  CHECK(choose_isa("").isa == detect_isa());
  CHECK(choose_isa("auto").error.empty());
  CHECK(is_supported(detect_isa()));
  CHECK(is_supported(Isa::Scalar));
  const auto all = supported_isas();
  REQUIRE_FALSE(all.empty());
  CHECK(all.front() == Isa::Scalar);
  CHECK(all.back() == detect_isa());
#if defined(__x86_64__)
  CHECK_FALSE(is_supported(Isa::Neon));
#endif
}

TEST_CASE("QLM_ISA selects or refuses an ISA", "[kernels]") {
  const char* old = std::getenv("QLM_ISA");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("QLM_ISA", "scalar", 1);
  CHECK(isa_from_env().isa == Isa::Scalar);
  CHECK(isa_from_env().error.empty());
  ::setenv("QLM_ISA", "not-an-isa", 1);
  CHECK_FALSE(isa_from_env().error.empty());
  for (std::size_t i = 0; i < kIsaCount; ++i) {
    const Isa isa = static_cast<Isa>(i);
    ::setenv("QLM_ISA", std::string(to_string(isa)).c_str(), 1);
    CHECK(isa_from_env().error.empty() == is_supported(isa));
  }
  ::unsetenv("QLM_ISA");
  CHECK(isa_from_env().isa == detect_isa());
  if (old != nullptr) ::setenv("QLM_ISA", saved.c_str(), 1);
}
