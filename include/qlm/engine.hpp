// Engine: many sequences over one model, their keys and values in one paged pool. One eval
// evaluates tokens of several sequences together (every weight read once per step), a new
// sequence can start from cached pages of earlier ones, and fork shares pages copy-on-write.
// Used by one thread at a time (the Scheduler drives one from its thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "qlm/activation_precision.hpp"
#include "qlm/batch.hpp"
#include "qlm/error.hpp"
#include "qlm/kv_pool.hpp"
#include "qlm/model.hpp"
#include "qlm/thread_pool.hpp"

namespace qlm {

/// Settings of an Engine.
struct EngineOptions {
  /// Byte budget of the KV pool, never exceeded (memory is committed as pages are first used;
  /// see huge_pages).
  /// 0 = room for four sequences of the full context.
  std::size_t kv_bytes = 0;
  /// Most tokens one sequence holds; 0 = min(trained context, 4096).
  std::uint32_t context = 0;
  KvType kv_type = KvType::F32;
  /// Threads of the engine's own spin pool (0 = all hardware threads). Only without `pool`.
  int threads = 0;
  std::shared_ptr<ThreadPool> pool{};  ///< run on this pool instead of an own one
  /// Kernel ISA, as SessionOptions::isa ("reference": the scalar fp32 path).
  std::string isa{};
  /// Tokens per forward chunk (bounds activation memory); 0 = as SessionOptions::batch.
  std::uint32_t batch = 0;
  ActivationPrecision activations = ActivationPrecision::Auto;
  /// Backs the pool with transparent huge pages where the OS allows: attention over many
  /// sequences misses the TLB far less, but each (layer, KV head) region commits 2 MiB at a time
  /// (up to 2 MiB x regions ahead of use, never beyond kv_bytes). false: 4 KiB pages, as written.
  bool huge_pages = true;
};

/// Sequences sharing a model and a KV page pool, evaluated in batches.
class Engine {
 public:
  /// Allocates the pool's address space and the buffers once; `model` must not be null.
  static Result<Engine> create(std::shared_ptr<const Model> model, EngineOptions options = {});
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  /// A new, empty sequence.
  SequenceId add();
  /// A new sequence holding `parent`'s tokens, sharing its pages copy-on-write (n completions
  /// of one prompt cost one prompt).
  Result<SequenceId> fork(SequenceId parent);
  /// Ends a sequence. Its pages stay cached for later prompts until the pool needs room.
  Result<void> remove(SequenceId sequence);
  /// Keeps the first n tokens of a sequence (n <= its length); shared pages stay intact. Returns
  /// the tokens kept: n, or fewer on a model with sliding-window layers when keys that left the
  /// window at n were let go and evicted since (then evaluate the rest again).
  Result<std::uint32_t> truncate(SequenceId sequence, std::uint32_t n);
  /// On an empty sequence: takes the longest prefix of `prompt` whose keys and values are
  /// cached (whole pages shared, the matching part of one more page copied), leaving at least
  /// the last token of `prompt` to evaluate. Returns the tokens taken.
  Result<std::uint32_t> reuse_prefix(SequenceId sequence, std::span<const std::int32_t> prompt);

  /// Evaluates every item's tokens (each sequence at most once per batch) in one forward pass
  /// and returns the logits asked for. A sequence's logits are bit-identical whatever else is
  /// in the batch, however its tokens are split across calls, and on any thread count. Fails
  /// with nothing changed on an unknown sequence, a token outside the vocabulary, a sequence
  /// past the context (ContextFull) or a pool without room for the batch (PoolFull).
  Result<BatchLogits> eval(std::span<const BatchItem> items);

  /// Writes a sequence's tokens and keys and values to `path` (atomically, with a checksum, tied
  /// to this model file and KV type, and for longrope to the factors this context chose).
  Result<void> save(SequenceId sequence, const std::filesystem::path& path) const;
  /// A new sequence from a file written by save(). Refused, with nothing changed, for a file of
  /// another model, KV type, longrope factor set or cache geometry, a damaged or altered file, one
  /// longer than the context, or a pool without room.
  Result<SequenceId> restore(const std::filesystem::path& path);

  /// The tokens whose keys and values a sequence holds.
  Result<std::span<const std::int32_t>> tokens(SequenceId sequence) const;
  /// Pages eval() would need to append `n` tokens to `sequence` (0 for an unknown one).
  std::uint32_t pages_needed(SequenceId sequence, std::uint32_t n) const;
  /// The most pages a sequence of `tokens` tokens holds when evaluated at most `chunk` tokens at
  /// a time (sliding-window layers keep only the window and one chunk).
  std::uint64_t max_pages(std::uint64_t tokens, std::uint32_t chunk) const;
  KvPoolStats pool_stats() const;
  std::uint32_t context_size() const;  ///< most tokens of one sequence
  std::size_t sequences() const;       ///< live sequences
  const Model& model() const;
  std::string_view isa() const;  ///< as Session::isa

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qlm
