// The interface between a Session and a forward-pass implementation (reference or fast), and the
// one place a session's options are resolved into one: ISA, thread pool, prompt chunk size and
// activation precision.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "kernel_table.hpp"
#include "kv/sequence_kv.hpp"
#include "qlm/model.hpp"
#include "qlm/session.hpp"

namespace qlm::detail {

/// Told the rows evaluated so far; false stops the evaluation.
using Progress = std::function<bool(std::size_t rows_done)>;

/// One token of a batch: its id, its position in its sequence, and that sequence's pages.
struct ForwardRow {
  std::int32_t token = 0;
  std::uint32_t pos = 0;
  SequenceKv* kv = nullptr;
};

/// Whether no two rows belong to one sequence (a decode batch); `scratch` keeps its capacity
/// between calls so the check allocates nothing in steady state.
bool one_row_each(std::span<const ForwardRow> rows, std::vector<const SequenceKv*>& scratch);

/// Runs the decoder over a batch of rows from any number of sequences, writing their keys and
/// values. A sequence's rows come in position order at the positions after its cached tokens,
/// and its pages for them are reserved (SequenceKv::reserve). A row's result never depends on
/// the other rows, on how the batch is chunked, or on the thread count.
class Forward {
 public:
  virtual ~Forward() = default;
  /// Evaluates `rows` and writes the logits of rows `wanted` (ascending indices into rows) to
  /// `logits` ([wanted.size()][vocab]). `progress`, if set, is told the rows done after each
  /// chunk; when it returns false the run stops with an ErrorCode::Cancelled failure.
  virtual void run(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted,
                   std::span<float> logits, const Progress* progress = nullptr) = 0;
  /// The kernels it runs on (the reference path: the scalar table), e.g. for the KV cache's f16
  /// conversion.
  virtual const kernels::KernelTable& kernels() const = 0;
  /// "reference", or the name of the kernel ISA.
  virtual std::string_view isa() const = 0;
};

/// Calls `progress` (if any) with the rows done so far, unless all are; throws a Cancelled
/// failure when it returns false (the last chunk is never cancelled: its work is done).
void report(const Progress* progress, std::size_t done, std::size_t total);

/// Checks what every sequence of `model` needs (a known KV type, at most 64 query heads per KV
/// head) and resolves a requested context: 0 = min(trained context, 4096); absurd ones fail.
std::uint32_t resolve_context(const Model& model, KvType kv_type, std::uint32_t context);

/// Builds the forward pass that `options` ask for, for sequences of up to `context` tokens:
/// isa "reference" is the scalar fp32 path; otherwise the ISA (options.isa, else QLM_ISA, else
/// the best this CPU runs), the pool (options.pool, else a spin pool of options.threads), the
/// prompt chunk size and each matrix's activation precision are resolved here, once. Throws an
/// Error (detail::fail) on a refused ISA or conflicting options.
std::unique_ptr<Forward> make_forward(const Model& model, const SessionOptions& options,
                                      std::uint32_t context);

}  // namespace qlm::detail
