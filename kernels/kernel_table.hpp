// Per-ISA compute kernels behind one table of function pointers, and the runtime ISA dispatch.
//
// Quantized matmul contract (docs/kernels.md):
//   Weights are Q8/Q4/Q4NL/Q5 tensors in the tile layout of docs/format.md (16 rows x 32 K per
//   tile, qlm/quant/layout.hpp).
//   Activations are quantized per row into blocks of 32 along K (K zero-padded to a multiple of
//   32): d = amax / 127 (0 for a block with amax <= kZeroBlockAmax), q = nearbyint(x * (1 / d))
//   clamped to [-127, 127], s = the exact int32 sum of the block's q. Every ISA produces the same
//   q, d and s bit for bit.
//   y[r] = sum over blocks b of d_w[r, b] * d_a[b] * (sum_i u[r, b, i] * q[b, i] - zp * s[b]),
//   zp = 128 (Q8; Q4NL with u = kQ4nlLevels[nibble] + 128; Q5 with u = code + 112) or 8 (Q4).
//   The integer part of each block is exact; blocks are accumulated in order b = 0, 1, ... into
//   one float per (row, activation row), so a row's result never depends on how rows are split
//   between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/format/dtype.hpp"
#include "qlm/kv_type.hpp"

namespace qlm::kernels {

/// Instruction-set variants. Scalar runs anywhere; the others need the CPU features in their name.
enum class Isa : std::uint8_t { Scalar, Avx2, Avx512, Avx512Vnni, Neon, NeonDotprod, NeonI8mm };
inline constexpr std::size_t kIsaCount = 7;

/// Lower-case name used by QLM_ISA: scalar|avx2|avx512|avx512vnni|neon|neon-dotprod|neon-i8mm.
constexpr std::string_view to_string(Isa isa) noexcept {
  constexpr std::string_view names[kIsaCount] = {"scalar", "avx2",         "avx512",   "avx512vnni",
                                                 "neon",   "neon-dotprod", "neon-i8mm"};
  const auto i = static_cast<std::size_t>(isa);
  return i < kIsaCount ? names[i] : "?";
}

/// Parses an ISA name (exactly as to_string writes it); nullopt if unknown.
constexpr std::optional<Isa> parse_isa(std::string_view s) noexcept {
  for (std::size_t i = 0; i < kIsaCount; ++i) {
    if (to_string(static_cast<Isa>(i)) == s) return static_cast<Isa>(i);
  }
  return std::nullopt;
}

inline constexpr std::size_t kActBlock = 32;   ///< activation values per quantization block
inline constexpr std::size_t kAttnBlock = 32;  ///< most keys one attn_block call takes
/// A block whose largest |x| is at most this is stored as all zeros with d = 0 (keeps 1/d finite).
inline constexpr float kZeroBlockAmax = 1e-30f;

/// Quantized activation rows. Row m's data: q + m*blocks*32 (blocks*32 int8, padding zero),
/// d + m*blocks (one scale per block), s + m*blocks (exact sum of the block's 32 q).
struct QuantizedRows {
  const std::int8_t* q = nullptr;
  const float* d = nullptr;
  const std::int32_t* s = nullptr;
  std::size_t blocks = 0;  ///< ceil(k / 32)
  std::size_t rows = 0;    ///< m
};

/// Element counts of the three buffers for `rows` activation rows of length k.
struct QuantizedRowsSize {
  std::size_t blocks = 0;
  std::size_t q = 0;  ///< int8 elements (rows * blocks * 32)
  std::size_t d = 0;  ///< float elements (rows * blocks)
  std::size_t s = 0;  ///< int32 elements (rows * blocks)
};
constexpr QuantizedRowsSize quantized_rows_size(std::size_t rows, std::size_t k) noexcept {
  const std::size_t blocks = (k + kActBlock - 1) / kActBlock;
  return {blocks, rows * blocks * kActBlock, rows * blocks, rows * blocks};
}

/// Quantizes x[m][k] (row stride ldx floats, inputs finite) into q/d/s sized by
/// quantized_rows_size(m, k). No alignment needed.
using QuantizeRowsFn = void (*)(const float* x, std::size_t m, std::size_t k, std::size_t ldx,
                                std::int8_t* q, float* d, std::int32_t* s);

/// y[m*ldy + r] = row r of W (n x k, tile layout) dotted with activation row m, for every
/// m < a.rows and r in [16*g0, min(16*g1, n)). Rows >= n are never written. a.blocks must be
/// ceil(k/32). Small m (1; 2 for a split input) may take a streaming GEMV path, larger m a
/// register-tiled GEMM. Splitting [0, ceil(n/16)) into any set of [g0, g1) chunks gives
/// bit-identical y. Nothing is allocated.
using GemmFn = void (*)(const std::uint8_t* w, std::size_t n, std::size_t k, const QuantizedRows& a,
                        float* y, std::size_t ldy, std::size_t g0, std::size_t g1);

/// Float weights W (f32, f16 or bf16 bits as `type` says; row-major n x k, rows contiguous):
/// y[i*ldy + r] = sum over c < k of W[r][c] * x[i*ldx + c], for every i < m and r in [r0, r1).
/// Each (r, i) is accumulated in an order fixed by the ISA alone (not by m, [r0, r1) or the other
/// rows), so any split of rows or activation rows gives bit-identical y. Nothing is allocated.
using FloatGemmFn = void (*)(const std::uint8_t* w, DType type, std::size_t k, const float* x,
                             std::size_t m, std::size_t ldx, float* y, std::size_t ldy,
                             std::size_t r0, std::size_t r1);

struct KernelTable {
  Isa isa = Isa::Scalar;
  QuantizeRowsFn quantize_rows = nullptr;
  GemmFn gemm_q8 = nullptr;
  GemmFn gemm_q4 = nullptr;
  /// Q4NL weights (Q4's tiles, weight kQ4nlLevels[nibble] * d): gemm_q4's contract, exact Q8
  /// integer arithmetic per block on the decoded levels.
  GemmFn gemm_q4nl = nullptr;
  /// Q5 weights (Q4's nibbles plus a plane of fifth bits, weight (code - 16) * d): gemm_q8's
  /// contract, exact Q8 integer arithmetic per block on the decoded codes.
  GemmFn gemm_q5 = nullptr;
  /// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may alias x.
  void (*rmsnorm)(float* out, const float* x, const float* w, std::size_t n, float eps) = nullptr;
  /// x = softmax(x) in place (max-subtracted); n >= 1.
  void (*softmax)(float* x, std::size_t n) = nullptr;
  /// gate[i] = silu(gate[i]) * up[i].
  void (*silu_mul)(float* gate, const float* up, std::size_t n) = nullptr;
  /// RoPE on one head, Hugging Face rotate-half order: for i < head_dim/2, with x0 = x[i] and
  /// x1 = x[i + head_dim/2]: x[i] = x0*cos[i] - x1*sin[i], x[i + head_dim/2] = x1*cos[i] +
  /// x0*sin[i]. cos/sin hold head_dim/2 values for this position. head_dim even.
  void (*rope)(float* x, const float* cos, const float* sin, std::size_t head_dim) = nullptr;
  /// y[i] += x[i] (residual).
  void (*add)(float* y, const float* x, std::size_t n) = nullptr;
  /// sum a[i]*b[i].
  float (*dot)(const float* a, const float* b, std::size_t n) = nullptr;
  /// y[i] += alpha * x[i].
  void (*axpy)(float* y, float alpha, const float* x, std::size_t n) = nullptr;
  /// y[i] = x[i] converted from IEEE f16 bits, exactly (subnormals, infinities and NaN payloads
  /// kept, signalling NaNs not quieted): bit-identical to detail::f16_to_f32 on every ISA.
  void (*f16_to_f32)(const std::uint16_t* x, float* y, std::size_t n) = nullptr;
  /// y[i] = f16 bits of x[i], rounded to nearest even: overflow gives +-Inf, NaN gives
  /// sign | 0x7e00. Bit-identical to detail::f32_to_f16 on every ISA.
  void (*f32_to_f16)(const float* x, std::uint16_t* y, std::size_t n) = nullptr;
  /// One block of online-softmax attention for the g query heads q[g][hd] that share n keys and
  /// values (1 <= n <= kAttnBlock; f32 or f16 bits as `type` says; f16 is converted exactly as
  /// it is read, so an f16 block gives the same bits as the f32 block of its converted values).
  /// k is a KV page's keys, dims-major: element i of the page's key t is k[i * kAttnBlock + t];
  /// the block's keys are t = first + 0..n-1 (first + n <= kAttnBlock). v holds the block's values
  /// as rows v[n][hd]. For each head j, with s_t = scale * (q_j . k_t) and M = max(m[j], max_t
  /// s_t): if M > m[j], l[j] and acc[j][.] are multiplied by exp(m[j] - M) and m[j] = M; then
  /// p_t = exp(s_t - M), l[j] += sum_t p_t and acc[j][i] += sum_t p_t * v_t[i] (t in order).
  /// Start with m = -inf, l = 0, acc = 0; the attention output is acc[j] / l[j]. May read all of
  /// k's page (kAttnBlock * hd elements; other slots' contents never reach a result) and exactly
  /// rows [0, n) of v. next_k / next_v (null: none) are the caller's next key page and next value
  /// rows (kAttnBlock rows): only prefetched, never read.
  void (*attn_block)(const float* q, std::size_t g, std::size_t hd, const void* k,
                     std::size_t first, const void* v, KvType type, std::size_t n, float scale,
                     float* m, float* l, float* acc, const void* next_k,
                     const void* next_v) = nullptr;
  /// GEMM for f32 / f16 / bf16 weights against float activations (FloatGemmFn's contract).
  FloatGemmFn gemm_float = nullptr;
  /// gate[i] = gelu(gate[i]) * up[i] (GeGLU), or gelu(gate[i]) when up is null; GELU's tanh form
  /// (PyTorch's approximate="tanh") computed as v / (1 + exp(-2 * sqrt(2/pi) * (v + 0.044715
  /// v^3))), which equals 0.5 v (1 + tanh(...)) without its cancellation for negative v.
  void (*gelu_mul)(float* gate, const float* up, std::size_t n) = nullptr;
  /// The fitted f16 scale of one block of 32 values x (finite) with error weights w >= 0, for a
  /// quantized type: docs/quantization.md's search, bit-identical to the scalar twin on every ISA.
  float (*fit_scale)(DType t, const float* x, const float* w) = nullptr;
  /// GPTQ's error feedback from one block of n <= 32 quantized columns to the columns after it:
  /// for each of `rows` rows r and each c in [from, k), w[r * k + c] -= e[r * ld_e + i] *
  /// u[i * k + c] for i = 0, ..., n - 1 in turn, each product rounded before it is subtracted
  /// (no fused multiply-add): the scalar twin's bits on every ISA, so converted files agree.
  void (*gptq_update)(const double* e, std::size_t ld_e, std::size_t rows, std::size_t n,
                      const double* u, std::size_t k, std::size_t from, double* w) = nullptr;
  /// LayerNorm (starcoder2): out[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i], var the
  /// biased variance (two passes over x); out may alias x.
  void (*layernorm)(float* out, const float* x, const float* w, const float* b, std::size_t n,
                    float eps) = nullptr;
  /// What a first int8 pass of n activations missed: r[j] = x[j] - q[j] * d[j / 32], rounded
  /// once (a fused multiply-add), so bit-identical on every ISA; x starts a block.
  void (*act_residual)(const float* x, const std::int8_t* q, const float* d, std::size_t n,
                       float* r) = nullptr;

  /// The GEMM for a quantized weight type (nullptr for a float type).
  GemmFn gemm_for(DType t) const noexcept {
    switch (t) {
      case DType::Q8:
        return gemm_q8;
      case DType::Q4:
        return gemm_q4;
      case DType::Q4NL:
        return gemm_q4nl;
      case DType::Q5:
        return gemm_q5;
      default:
        return nullptr;
    }
  }
};

/// Best ISA this CPU (and OS) supports among those compiled into this binary.
Isa detect_isa() noexcept;
/// True if the kernels for `isa` are compiled in and this CPU and OS can run them.
bool is_supported(Isa isa) noexcept;
/// Every supported ISA, Scalar first.
std::vector<Isa> supported_isas();
/// The table for `isa` if is_supported(isa), otherwise the scalar table (check .isa).
const KernelTable& kernels_for(Isa isa) noexcept;

/// An ISA choice; `error` is empty on success (then `isa` is usable), otherwise it says why the
/// request was refused and `isa` is detect_isa().
struct IsaChoice {
  Isa isa = Isa::Scalar;
  std::string error;
};
/// Resolves a requested ISA name: empty or "auto" picks detect_isa(); an unknown name or an ISA
/// this CPU cannot run is an error.
IsaChoice choose_isa(std::string_view requested);
/// choose_isa(value of the QLM_ISA environment variable, or "" when unset).
IsaChoice isa_from_env();

}  // namespace qlm::kernels
