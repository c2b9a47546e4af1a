// Runtime ISA detection (CPUID + XGETBV on x86-64, getauxval on aarch64) and table selection.
#include <cstdlib>

#include "detail/tables.hpp"
#include "kernel_table.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace qlm::kernels {
namespace {

struct Features {
  bool avx2 = false, avx512 = false, avx512vnni = false;
  bool neon = false, dotprod = false, i8mm = false;
};

#if defined(__x86_64__)
// XCR0 via inline asm: the _xgetbv intrinsic would need -mxsave on this (baseline) file.
std::uint64_t xcr0() {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}
#endif

Features detect() {
  Features f;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return f;
  const bool osxsave = (c & (1u << 27)) != 0;
  const bool fma = (c & (1u << 12)) != 0, f16c = (c & (1u << 29)) != 0;
  const bool avx = (c & (1u << 28)) != 0;
  if (!osxsave || !avx) return f;
  const std::uint64_t xcr = xcr0();
  // The OS must save the YMM state (bits 1-2) and, for AVX-512, opmask + ZMM state (bits 5-7).
  const bool os_ymm = (xcr & 0x6) == 0x6;
  const bool os_zmm = (xcr & 0xe6) == 0xe6;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return f;
  const bool avx2 = (b & (1u << 5)) != 0;
  const bool avx512f = (b & (1u << 16)) != 0, avx512dq = (b & (1u << 17)) != 0;
  const bool avx512bw = (b & (1u << 30)) != 0, avx512vl = (b & (1u << 31)) != 0;
  const bool vnni = (c & (1u << 11)) != 0;
  f.avx2 = os_ymm && avx2 && fma && f16c;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512vnni = f.avx512 && vnni;
#elif defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory on AArch64.
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.dotprod = (hw & HWCAP_ASIMDDP) != 0;
#if defined(HWCAP2_I8MM)
  f.i8mm = f.dotprod && (hw2 & HWCAP2_I8MM) != 0;
#else
  (void)hw2;
#endif
#endif
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

}  // namespace

bool is_supported(Isa isa) noexcept {
  const Features& f = features();
  switch (isa) {
    case Isa::Scalar:
      return true;
#if defined(__x86_64__)
    case Isa::Avx2:
      return f.avx2;
    case Isa::Avx512:
      return f.avx512;
    case Isa::Avx512Vnni:
      return f.avx512vnni;
#endif
#if defined(__aarch64__)
    case Isa::Neon:
      return f.neon;
    case Isa::NeonDotprod:
      return f.dotprod;
    case Isa::NeonI8mm:
      return f.i8mm;
#endif
    default:
      return false;
  }
}

Isa detect_isa() noexcept {
  for (std::size_t i = kIsaCount; i-- > 1;) {
    // Enum order is "better" within each architecture, and at most one architecture is present.
    if (is_supported(static_cast<Isa>(i))) return static_cast<Isa>(i);
  }
  return Isa::Scalar;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (std::size_t i = 0; i < kIsaCount; ++i) {
    if (is_supported(static_cast<Isa>(i))) out.push_back(static_cast<Isa>(i));
  }
  return out;
}

const KernelTable& kernels_for(Isa isa) noexcept {
  if (!is_supported(isa)) return detail::scalar_table();
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx2:
      return detail::avx2_table();
    case Isa::Avx512:
      return detail::avx512_table();
    case Isa::Avx512Vnni:
      return detail::avx512_vnni_table();
#endif
#if defined(__aarch64__)
    case Isa::Neon:
      return detail::neon_table();
    case Isa::NeonDotprod:
      return detail::neon_dotprod_table();
    case Isa::NeonI8mm:
      return detail::neon_i8mm_table();
#endif
    default:
      return detail::scalar_table();
  }
}

IsaChoice choose_isa(std::string_view requested) {
  if (requested.empty() || requested == "auto") return {detect_isa(), {}};
  const auto isa = parse_isa(requested);
  if (!isa) {
    return {detect_isa(), "unknown ISA '" + std::string(requested) +
                              "' (expected auto|scalar|avx2|avx512|avx512vnni|neon|neon-dotprod|"
                              "neon-i8mm)"};
  }
  if (!is_supported(*isa)) {
    return {detect_isa(), "ISA '" + std::string(requested) + "' is not supported by this CPU"};
  }
  return {*isa, {}};
}

IsaChoice isa_from_env() {
  const char* v = std::getenv("QLM_ISA");
  return choose_isa(v != nullptr ? std::string_view(v) : std::string_view());
}

}  // namespace qlm::kernels
