// Session: one sequence being evaluated — its KV cache, position and scratch buffers. Sessions are
// independent: many may share one Model, each used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "qlm/activation_precision.hpp"
#include "qlm/error.hpp"
#include "qlm/kv_type.hpp"
#include "qlm/model.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm {

class ActivationObserver;  // qlm/eval/activation_observer.hpp

/// Per-session settings.
/// Per-session settings. Each has one meaning; combinations that would contradict each other
/// (threads with a pool, an observer on the reference path) are refused by Session::create.
struct SessionOptions {
  std::uint32_t context = 0;  ///< tokens the KV cache holds; 0 = min(trained context, 4096)
  /// Threads of the session's own spin pool (0 = all hardware threads). Only without `pool`.
  int threads = 0;
  /// Element type of the KV cache; F16 halves its memory and the bytes attention reads.
  KvType kv_type = KvType::F32;
  /// Kernel ISA: "" = the QLM_ISA environment variable if set, else the best this CPU runs;
  /// scalar|avx2|avx512|avx512vnni|neon|neon-dotprod|neon-i8mm (unsupported = an error); or
  /// "reference": the single-threaded scalar fp32 path, the yardstick of the tests (slow).
  std::string isa{};
  /// Run parallel work on this pool (e.g. one shared by many sessions) instead of an own one.
  std::shared_ptr<ThreadPool> pool{};
  /// Prompt tokens per forward chunk (bounds activation memory). 0 = 256, or down to 64 for
  /// small models, keeping the chunk's buffers within 4% of the model file.
  std::uint32_t batch = 0;
  /// Integer precision of matmul inputs (Auto: two int8 passes into q8 weights).
  ActivationPrecision activations = ActivationPrecision::Auto;
  /// Sees every weight-matrix input (e.g. an Importance collector). Optional; not with "reference".
  std::shared_ptr<ActivationObserver> observer{};
};

/// What eval() returns.
struct EvalOptions {
  bool all_logits = false;  ///< logits for every input token ([n][vocab]) instead of the last
  /// Told (tokens done, tokens in all) after each forward chunk of a long evaluation; returning
  /// false cancels it: eval fails with ErrorCode::Cancelled and the session is unchanged.
  std::function<bool(std::uint32_t done, std::uint32_t total)> on_progress{};
};

/// One sequence's state over a shared Model.
class Session {
 public:
  /// Allocates the KV cache and buffers once; `model` must not be null.
  static Result<Session> create(std::shared_ptr<const Model> model, SessionOptions options = {});
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  /// Evaluates the pending tokens (see defer()) and then `tokens` at the current position, in one
  /// forward pass, and returns the logits of `tokens` (a view valid until the next call; the last
  /// pending token's when `tokens` is empty). Fails without changing state on an invalid id or if
  /// the context would overflow.
  Result<std::span<const float>> eval(std::span<const std::int32_t> tokens,
                                      EvalOptions options = {});

  /// Appends `token` to the sequence without evaluating it yet: the next eval() evaluates it
  /// first. generate() leaves its last sampled token so, so that a chained call (the next chat
  /// turn) sees it without a single-turn generation paying a forward pass for it.
  Result<void> defer(std::int32_t token);

  /// Rolls the sequence back to its first `n` tokens (n <= position() + pending().size()), e.g.
  /// to reuse a prefix, and returns the tokens kept. That is n, except on a model with
  /// sliding-window layers: a Session keeps only the window's keys, so rolling back further than
  /// the window reaches keeps the longest prefix it still can (evaluate the rest again).
  Result<std::uint32_t> truncate(std::uint32_t n);

  std::uint32_t position() const;                 ///< tokens in the cache
  std::uint32_t context_size() const;             ///< maximum tokens
  std::span<const std::int32_t> tokens() const;   ///< the tokens in the cache, in order
  std::span<const std::int32_t> pending() const;  ///< deferred tokens, evaluated by the next eval()
  const Model& model() const;
  /// Name of the kernel ISA in use ("reference" for the reference path).
  std::string_view isa() const;
  KvType kv_type() const;  ///< element type of the KV cache
  /// Bytes reserved for the KV cache: the context in whole pages of kKvPageTokens (address
  /// space; memory is committed as positions fill, and sliding-window layers reuse theirs).
  std::size_t kv_bytes() const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qlm
