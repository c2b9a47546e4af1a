// The optimized forward pass: batched prompts through GEMM, decode through GEMV, quantized
// activations, the ISA's kernels and the session's thread pool. Buffers are sized once.
#pragma once

#include <memory>

#include "arch/forward.hpp"
#include "kernel_table.hpp"
#include "qlm/activation_observer.hpp"
#include "qlm/activation_precision.hpp"
#include "qlm/model.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm::detail {

/// Tokens per prompt chunk when the session leaves it to us: 256, halved (down to 64) while
/// the chunk's activation buffers would exceed 4% of the model file.
std::uint32_t default_batch(const Model& model, ActivationPrecision activations);

/// Builds the fast path for `model`; `max_batch` bounds the tokens processed per chunk;
/// `activations` picks one or two int8 passes per input; `observer` (may be null) sees every
/// weight-matrix input.
std::unique_ptr<Forward> make_fast_forward(const Model& model, const kernels::KernelTable& kernels,
                                           std::shared_ptr<ThreadPool> pool,
                                           std::uint32_t max_batch, ActivationPrecision activations,
                                           std::shared_ptr<ActivationObserver> observer);

}  // namespace qlm::detail
