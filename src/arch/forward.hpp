// The interface between a Session and a forward-pass implementation (reference or fast).
#pragma once

#include <cstdint>
#include <span>

#include "qlm/kv_cache.hpp"

namespace qlm::detail {

/// Runs the decoder over a batch of tokens at consecutive positions, filling the KV cache.
class Forward {
 public:
  virtual ~Forward() = default;
  /// Processes tokens[i] at position start + i. Writes logits of every token into `logits`
  /// ([n][vocab]) when all_logits, else only the last token's ([vocab]).
  virtual void run(std::span<const std::int32_t> tokens, std::uint32_t start, KvCache& cache,
                   std::span<float> logits, bool all_logits) = 0;
};

}  // namespace qlm::detail
