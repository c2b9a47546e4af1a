// The optimized forward pass: batched prompts through GEMM, decode through GEMV, quantized
// activations, the ISA's kernels and the session's thread pool. Buffers are sized once.
#pragma once

#include <memory>
#include <vector>

#include "arch/forward.hpp"
#include "kernel_table.hpp"
#include "qlm/activation_precision.hpp"
#include "qlm/eval/activation_observer.hpp"
#include "qlm/model.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm::detail {

/// Which matrix inputs get two int8 passes (ActivationPrecision, decided once per model and
/// precision from the types of the matrices that read each input).
struct InputSplits {
  struct Layer {
    bool qkv = false, wo = false, gate_up = false, down = false;
  };
  std::vector<Layer> layers;
  bool head = false;
  /// True if any input does (only then are the buffers sized for two passes).
  bool any() const;
};

/// Resolves `activations` against the weight types of `model`.
InputSplits resolve_splits(const Model& model, ActivationPrecision activations);

/// Tokens per prompt chunk when the session leaves it to us: 256, halved (down to 64) while
/// the chunk's activation buffers would exceed 4% of the model file.
std::uint32_t default_batch(const Model& model, const InputSplits& splits);

/// What the fast path runs with, resolved by make_forward.
struct FastOptions {
  std::shared_ptr<ThreadPool> pool;
  InputSplits splits;
  std::shared_ptr<ActivationObserver> observer;  ///< may be null
  std::uint32_t max_batch = 1;                   ///< most tokens processed per chunk
  std::uint32_t context = 0;                     ///< longest sequence (picks longrope's factors)
};

/// The fast path, whose decoder and LM head can also run apart: decode lanes run the decoder on
/// one thread each, then the head once over all their rows on every thread.
class FastPath : public Forward {
 public:
  /// Evaluates `rows` as run() does, but writes the final-normed hidden rows of `wanted` to
  /// `hidden` ([wanted.size()][hidden_size]) instead of their logits.
  virtual void run_hidden(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted,
                          std::span<float> hidden) = 0;
  /// The logits ([rows][vocab]) of final-normed hidden rows ([rows][hidden_size]).
  virtual void head_rows(std::span<const float> hidden, std::span<float> logits) = 0;
};

/// Builds the fast path for `model` on `kernels`.
std::unique_ptr<FastPath> make_fast_forward(const Model& model, const kernels::KernelTable& kernels,
                                            FastOptions options);

}  // namespace qlm::detail
