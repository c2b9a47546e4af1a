// Resolves a session's options into a forward pass (see arch/forward.hpp).
#include "arch/forward.hpp"

#include <algorithm>

#include "arch/fast_forward.hpp"
#include "arch/laned_forward.hpp"
#include "arch/reference_forward.hpp"
#include "util/fail.hpp"

namespace qlm::detail {

bool one_row_each(std::span<const ForwardRow> rows, std::vector<const SequenceKv*>& scratch) {
  scratch.clear();
  for (const ForwardRow& r : rows) scratch.push_back(r.kv);
  std::sort(scratch.begin(), scratch.end());
  return std::adjacent_find(scratch.begin(), scratch.end()) == scratch.end();
}

void report(const Progress* progress, std::size_t done, std::size_t total) {
  if (progress && *progress && done < total &&
      !call_back("the progress callback", *progress, done)) {
    fail(ErrorCode::Cancelled, "evaluation cancelled after {} of {} tokens", done, total);
  }
}

std::uint32_t resolve_context(const Model& model, KvType kv_type, std::uint32_t context) {
  const ModelConfig& c = model.config();
  if (kv_type != KvType::F32 && kv_type != KvType::F16) {
    fail(ErrorCode::InvalidArgument, "unknown KV cache type {}", static_cast<int>(kv_type));
  }
  if (c.n_heads / c.n_kv_heads > 64) {
    fail(ErrorCode::Unsupported, "{} query heads per KV head (at most 64)",
         c.n_heads / c.n_kv_heads);
  }
  const std::uint32_t trained = c.max_position_embeddings ? c.max_position_embeddings : 4096;
  const std::uint32_t n = context ? context : std::min(trained, 4096u);
  if (n > (1u << 24))
    fail(ErrorCode::InvalidArgument, "context {} is absurd (at most {})", n, 1u << 24);
  return n;
}

std::unique_ptr<Forward> make_forward(const Model& model, const SessionOptions& options,
                                      std::uint32_t context) {
  if (options.pool && options.threads != 0) {
    fail(ErrorCode::InvalidArgument,
         "SessionOptions: threads ({}) and pool are both set; a pool brings its own threads",
         options.threads);
  }
  if (options.threads < 0 || options.threads > 1024) {
    fail(ErrorCode::InvalidArgument, "SessionOptions: {} threads (0 to 1024)", options.threads);
  }
  if (options.isa == "reference") {
    if (options.observer) {
      fail(ErrorCode::InvalidArgument,
           "SessionOptions: an observer needs the fast path, not isa "
           "\"reference\"");
    }
    return make_reference_forward(model, context);
  }
  const kernels::IsaChoice choice =
      options.isa.empty() ? kernels::isa_from_env() : kernels::choose_isa(options.isa);
  if (!choice.error.empty()) fail(ErrorCode::Unsupported, "{}", choice.error);
  FastOptions fast{.pool = options.pool ? options.pool : make_spin_pool(options.threads),
                   .splits = resolve_splits(model, options.activations),
                   .observer = options.observer};
  const std::uint32_t batch =
      options.batch != 0 ? options.batch : default_batch(model, fast.splits);
  fast.max_batch = std::min(batch, context);
  fast.context = context;
  return make_laned_forward(model, kernels::kernels_for(choice.isa), std::move(fast));
}

}  // namespace qlm::detail
