// The interface between a Session and a forward-pass implementation (reference or fast), and the
// one place a session's options are resolved into one: ISA, thread pool, prompt chunk size and
// activation precision.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "kernel_table.hpp"
#include "kv_cache.hpp"
#include "qlm/model.hpp"
#include "qlm/session.hpp"

namespace qlm::detail {

/// Runs the decoder over a batch of tokens at consecutive positions, filling the KV cache.
class Forward {
 public:
  virtual ~Forward() = default;
  /// Processes tokens[i] at position start + i. Writes logits of every token into `logits`
  /// ([n][vocab]) when all_logits, else only the last token's ([vocab]).
  virtual void run(std::span<const std::int32_t> tokens, std::uint32_t start, KvCache& cache,
                   std::span<float> logits, bool all_logits) = 0;
  /// The kernels it runs on (the reference path: the scalar table), e.g. for the KV cache's f16
  /// conversion.
  virtual const kernels::KernelTable& kernels() const = 0;
  /// "reference", or the name of the kernel ISA.
  virtual std::string_view isa() const = 0;
};

/// Builds the forward pass that `options` ask for, for sequences of up to `context` tokens:
/// isa "reference" is the scalar fp32 path; otherwise the ISA (options.isa, else QLM_ISA, else
/// the best this CPU runs), the pool (options.pool, else a spin pool of options.threads), the
/// prompt chunk size and each matrix's activation precision are resolved here, once. Throws an
/// Error (detail::fail) on a refused ISA or conflicting options.
std::unique_ptr<Forward> make_forward(const Model& model, const SessionOptions& options,
                                      std::uint32_t context);

}  // namespace qlm::detail
