// Internal: the block scale search (scale_search.hpp) with one candidate per vector lane. Each
// lane computes exactly the scalar reference's operations for its candidate, element by element
// in column order (-ffp-contract=off keeps every product rounded), so its sums are the
// reference's sums bit for bit on every ISA; only the candidates run side by side. Blocks whose
// target / max could overflow (a tiny or non-finite extreme, a NaN) go to the reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <xsimd/xsimd.hpp>

#include "detail/scale_search.hpp"
#include "detail/tables.hpp"

#if defined(__F16C__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qlm::kernels {
namespace {

template <class A>
struct ScaleSearchLanes {
  using B = xsimd::batch<float, A>;
  static constexpr std::size_t W = B::size;
  static constexpr std::size_t kBlock = detail::scale_search::kBlock;
  // Slot 0 holds round-to-nearest's scale (its error only); slots 1.. the first round's targets.
  static constexpr std::size_t kMaxBatches = (1 + detail::scale_search::kMaxTargets + W - 1) / W;
  static constexpr std::size_t kPass = 4;  // batches per pass over the block (registers)

  // f16 rounding of every lane: the hardware conversion rounds to nearest even like
  // qlm::detail::f32_to_f16; a NaN may come back as another NaN, which the search skips alike.
  static B round_f16(B v) {
#if defined(__F16C__)
    if constexpr (W == 8) {
      const __m256 r = v;
      return _mm256_cvtph_ps(_mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
#elif defined(__aarch64__)
    if constexpr (W == 4) {
      const float32x4_t r = v;
      return vcvt_f32_f16(vcvt_f16_f32(r));
    }
#endif
    alignas(64) float t[W];
    v.store_aligned(t);
    for (float& e : t) e = detail::scale_search::round_f16(e);
    return B::load_aligned(t);
  }

  // a / b, correctly rounded: xsimd 8.1 divides NEON floats by a refined reciprocal estimate,
  // which can differ from the quotient in the last bit.
  static B div(B a, B b) {
#if defined(__aarch64__)
    if constexpr (W == 4) return B(vdivq_f32(a, b));
#endif
    return a / b;
  }

  // scale_search::level for finite v.
  template <DType T>
  static B level(B v) {
    if constexpr (T == DType::Q4NL) {
      B l(static_cast<float>(quant::kQ4nlLevels[0]));
      for (std::size_t m = 0; m + 1 < quant::kQ4nlLevels.size(); ++m) {
        l = xsimd::select(v > B(detail::scale_search::q4nl_mid(m)),
                          B(static_cast<float>(quant::kQ4nlLevels[m + 1])), l);
      }
      return l;
    } else {
      const B clamped = xsimd::min(xsimd::max(v, B(detail::scale_search::grid_lo(T))),
                                   B(detail::scale_search::grid_hi(T)));
#if defined(__AVX__)
      return xsimd::nearbyint(clamped);  // vroundps: the same half-to-even integer, one operation
#else
      const B magic(detail::scale_search::kRoundMagic);
      return (clamped + magic) - magic;
#endif
    }
  }

  // d[b] = f16(sum w x L / sum w L^2) for the levels L at inverse scale inv[b], NB batches.
  template <DType T, std::size_t NB>
  static void refit(const float* x, const float* w, const float* wx, const B* inv, B* d) {
    B a[NB], c[NB];
    for (std::size_t b = 0; b < NB; ++b) a[b] = c[b] = B(0.0f);
    for (std::size_t i = 0; i < kBlock; ++i) {
      const B xi(x[i]), wi(w[i]), wxi(wx[i]);
      for (std::size_t b = 0; b < NB; ++b) {
        const B l = level<T>(xi * inv[b]);
        a[b] += wxi * l;
        c[b] += (wi * l) * l;
      }
    }
    for (std::size_t b = 0; b < NB; ++b) {
      d[b] = round_f16(xsimd::select(c[b] > B(0.0f), div(a[b], c[b]), B(0.0f)));
    }
  }

  // err[b] = sum w (x - L d)^2 with the levels L at 1 / d[b], NB batches.
  template <DType T, std::size_t NB>
  static void errors(const float* x, const float* w, const B* d, B* err) {
    B inv[NB];
    for (std::size_t b = 0; b < NB; ++b) {
      inv[b] = xsimd::select(d[b] != B(0.0f), div(B(1.0f), d[b]), B(0.0f));
      err[b] = B(0.0f);
    }
    for (std::size_t i = 0; i < kBlock; ++i) {
      const B xi(x[i]), wi(w[i]);
      for (std::size_t b = 0; b < NB; ++b) {
        const B e = xi - level<T>(xi * inv[b]) * d[b];
        err[b] += (wi * e) * e;
      }
    }
  }

  // Scales and errors of nb batches of inverse scales, kPass batches per pass over the block;
  // slot 0's scale is replaced by `rtn` before its error is taken when rtn_slot is set.
  template <DType T>
  static void evaluate(const float* x, const float* w, const float* wx, const B* inv,
                       std::size_t nb, bool rtn_slot, float rtn, float* d_out, float* err_out) {
    B d[kMaxBatches], err[kMaxBatches];
    for (std::size_t b0 = 0; b0 < nb; b0 += kPass) {
      run_pass<T>(std::min(kPass, nb - b0),
                  [&]<std::size_t NB>() { refit<T, NB>(x, w, wx, inv + b0, d + b0); });
    }
    if (rtn_slot) {
      alignas(64) float t[W];
      d[0].store_aligned(t);
      t[0] = rtn;
      d[0] = B::load_aligned(t);
    }
    for (std::size_t b0 = 0; b0 < nb; b0 += kPass) {
      run_pass<T>(std::min(kPass, nb - b0),
                  [&]<std::size_t NB>() { errors<T, NB>(x, w, d + b0, err + b0); });
    }
    for (std::size_t b = 0; b < nb; ++b) {
      d[b].store_unaligned(d_out + b * W);
      err[b].store_unaligned(err_out + b * W);
    }
  }

  template <DType T, class F>
  static void run_pass(std::size_t nb, const F& f) {
    switch (nb) {
      case 1:
        f.template operator()<1>();
        break;
      case 2:
        f.template operator()<2>();
        break;
      case 3:
        f.template operator()<3>();
        break;
      default:
        f.template operator()<kPass>();
        break;
    }
  }

  // Inverse scales target / max for `n` targets into batches (unused lanes repeat the first).
  static std::size_t inverses(const float* targets, std::size_t n, float max, B* inv) {
    const std::size_t nb = (n + W - 1) / W;
    alignas(64) float t[kMaxBatches * W];
    for (std::size_t j = 0; j < nb * W; ++j) t[j] = targets[j < n ? j : 0];
    for (std::size_t b = 0; b < nb; ++b) inv[b] = div(B::load_aligned(t + b * W), B(max));
    return nb;
  }

  template <DType T>
  static float fit(const float* x, const float* w) {
    namespace ss = detail::scale_search;
    const float max = ss::extreme(x);
    bool finite = std::isfinite(max) && std::fabs(max) >= ss::kTinyMax;
    for (std::size_t i = 0; i < kBlock; ++i) finite = finite && x[i] == x[i];
    if (!finite) return detail::fit_scale_scalar(T, x, w);
    static const ss::Plan plan = ss::plan_for(T);
    alignas(64) float wx[kBlock];
    for (std::size_t i = 0; i < kBlock; ++i) wx[i] = w[i] * x[i];
    const float rtn = ss::rtn_scale(T, max);

    float targets[1 + ss::kMaxTargets];
    targets[0] = plan.targets[0];  // slot 0: round-to-nearest, whose refit is not used
    std::copy_n(plan.targets.begin(), plan.count, targets + 1);
    B inv[kMaxBatches];
    float d[kMaxBatches * W], err[kMaxBatches * W];
    const std::size_t nb = inverses(targets, 1 + plan.count, max, inv);
    evaluate<T>(x, w, wx, inv, nb, true, rtn, d, err);
    float best = err[0], best_d = rtn, best_target = 0.0f;
    // In candidate order, a candidate kept only if strictly better: the reference's choice.
    auto scan = [&](const float* ts, const float* ds, const float* es, std::size_t n) {
      for (std::size_t j = 0; j < n; ++j) {
        if (std::fabs(ds[j]) <= ss::kF16Max && es[j] < best) {
          best = es[j];
          best_d = ds[j];
          best_target = ts[j];
        }
      }
    };
    scan(targets + 1, d + 1, err + 1, plan.count);
    if (best_target != 0.0f) {
      const float center = best_target;
      float refined[ss::kRefinements];
      for (std::size_t j = 0; j < ss::kRefinements; ++j) {
        refined[j] = center + ss::kRefine[j] * plan.step;
      }
      const std::size_t nb2 = inverses(refined, ss::kRefinements, max, inv);
      evaluate<T>(x, w, wx, inv, nb2, false, 0.0f, d, err);
      scan(refined, d, err, ss::kRefinements);
    }
    return best_d;
  }

  static float fit_scale(DType t, const float* x, const float* w) {
    switch (t) {
      case DType::Q8:
        return fit<DType::Q8>(x, w);
      case DType::Q5:
        return fit<DType::Q5>(x, w);
      case DType::Q4NL:
        return fit<DType::Q4NL>(x, w);
      default:
        return fit<DType::Q4>(x, w);
    }
  }
};

}  // namespace
}  // namespace qlm::kernels
