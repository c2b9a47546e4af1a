// Standalone NEON kernel test (no Catch2: Debian ships no arm64 build of it here), cross-compiled
// and run under qemu-aarch64 by run_qemu.sh. Exit status 0 only if every check passes.
// Usage: neon_kernel_tests [--expect ISA] [--dispatch-only]. --dispatch-only checks which ISA is
// detected and offered, not the kernels: qemu computes the same bits under any -cpu model, so the
// kernels need one run, under the CPU that offers them all.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "float_gemm_check.hpp"
#include "gptq_check.hpp"
#include "kernel_check.hpp"
#include "kernel_table.hpp"
#include "scale_search_check.hpp"

int main(int argc, char** argv) {
  using namespace qlm::kernels;
  int failures = 0;
  auto report = [&](std::string_view what, const check::Report& rep) {
    std::printf("%-40s %s\n", std::string(what).c_str(), rep.ok() ? "ok" : "FAILED");
    for (const auto& e : rep.errors) std::printf("  %s\n", e.c_str());
    failures += rep.ok() ? 0 : 1;
  };
  const Isa best = detect_isa();
  std::printf("detected ISA: %s\n", std::string(to_string(best)).c_str());
  bool dispatch_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--dispatch-only") == 0) {
      dispatch_only = true;
    } else if (std::strcmp(argv[i], "--expect") == 0 && i + 1 < argc) {
      if (to_string(best) != argv[++i]) {
        std::printf("expected ISA %s\n", argv[i]);
        ++failures;
      }
    } else {
      std::printf("unknown argument %s\n", argv[i]);
      ++failures;
    }
  }
  for (std::size_t i = 0; i < kIsaCount; ++i) {
    const Isa isa = static_cast<Isa>(i);
    const bool ok = choose_isa(to_string(isa)).error.empty() == is_supported(isa) &&
                    parse_isa(to_string(isa)) == isa;
    if (!ok) {
      std::printf("dispatch inconsistent for %s\n", std::string(to_string(isa)).c_str());
      ++failures;
    }
  }
  if (dispatch_only) {
    std::printf("%s\n", failures == 0 ? "ALL PASSED (dispatch)" : "FAILURES");
    return failures == 0 ? 0 : 1;
  }
  const KernelTable& scalar = kernels_for(Isa::Scalar);
  report("scalar vs dequantized float", check::check_all_gemm(scalar, nullptr));
  report("scalar float weights vs double", check::check_all_float_gemm(scalar, nullptr));
  report("scalar q4nl code book", check::check_codebook(scalar, qlm::DType::Q4NL));
  report("scalar q5 codes", check::check_codebook(scalar, qlm::DType::Q5));
  report("scalar attention vs double", check::check_attention(scalar, nullptr));
  for (Isa isa : supported_isas()) {
    if (isa == Isa::Scalar) continue;
    const std::string name(to_string(isa));
    report(name + " gemm/quantize vs scalar", check::check_all_gemm(kernels_for(isa), &scalar));
    report(name + " q4nl code book", check::check_codebook(kernels_for(isa), qlm::DType::Q4NL));
    report(name + " q5 codes", check::check_codebook(kernels_for(isa), qlm::DType::Q5));
    report(name + " fp32 helpers vs scalar", check::check_float_helpers(kernels_for(isa), scalar));
    report(name + " int8x2 residual vs scalar",
           check::check_act_residual(kernels_for(isa), scalar));
    report(name + " float weights vs scalar",
           check::check_all_float_gemm(kernels_for(isa), &scalar));
    report(name + " f16 conversions vs scalar", check::check_half(kernels_for(isa), scalar));
    report(name + " attention vs scalar", check::check_attention(kernels_for(isa), &scalar));
    report(name + " scale search vs scalar", check::check_fit_scale(kernels_for(isa), scalar, 960));
    report(name + " gptq update vs scalar", check::check_gptq_update(kernels_for(isa), scalar));
  }
  std::printf("%s\n", failures == 0 ? "ALL PASSED" : "FAILURES");
  return failures == 0 ? 0 : 1;
}
