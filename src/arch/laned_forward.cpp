// Decode batches as lanes (see laned_forward.hpp). Splitting each matmul of a decode batch by
// columns needs a barrier after every matmul, and every row-wise step between matmuls reads rows
// the other cores wrote: each row's activations cross cores several times per layer. At 16
// SmolLM2-135M rows on 2 threads that was ~10% of a step; the cores' writes to lines the others
// had read were 3x slower than to their own (bench/RESULTS.md, session 24). A lane keeps its rows
// on one core from the embedding to the final norm; the LM head, a large matrix read once for a
// few rows, then runs once over all lanes' rows on every core. A row's result never depends on its
// batch, so a lane's rows get the same bits as in one batch.
#include "arch/laned_forward.hpp"

#include "model_access.hpp"

#include <algorithm>
#include <exception>
#include <utility>
#include <vector>

namespace qlm::detail {

std::size_t lane_rows(int threads, std::uint64_t weight_bytes) {
  // Fitted on 2 threads (bench/RESULTS.md, session 24), q4 decode against the split matmuls:
  // SmolLM2-135M (72 MiB) gained ~20% at 3 rows per lane; Qwen2.5-0.5B (269 MiB) lost 5-20% at 3,
  // broke even at 4 and gained 3-17% at 8; TinyLlama-1.1B (620 MiB) lost 1% at 4, gained 2% at 8.
  // Each lane streams every weight, so more threads need more rows per lane too.
  constexpr std::uint64_t kBytesPerRow = std::uint64_t{48} << 20;
  const auto by_size = static_cast<std::size_t>((weight_bytes + kBytesPerRow - 1) / kBytesPerRow);
  const auto t = static_cast<std::size_t>(std::max(threads, 1));
  return std::max<std::size_t>(3, by_size) * std::max<std::size_t>(1, t / 2);
}

namespace {

// A decode row's cost in weight multiply-adds: the matrices' (the same for every row) plus its
// attention's, weighted by how much slower those run (keys and values streamed from memory:
// ~12x per multiply-add in a SmolLM2-135M profile at depth 128). Only balances the lanes.
class RowCost {
 public:
  explicit RowCost(const ModelConfig& c) : c_(c) {
    const std::size_t d = c.hidden_size, qd = c.n_heads * c.head_dim,
                      kvd = c.n_kv_heads * c.head_dim, ff = c.intermediate_size;
    const std::size_t mlp = (c.gated_mlp() ? 3 : 2) * d * ff;
    weights_ = static_cast<double>(c.n_layers * (d * (qd + 2 * kvd) + qd * d + mlp) +
                                   static_cast<std::size_t>(c.vocab_size) * d);
  }

  double operator()(const ForwardRow& row) const {
    double keys = 0;  // keys attended over all layers
    for (std::uint32_t l = 0; l < c_.n_layers; ++l) {
      const std::uint32_t w = c_.window(l);
      keys += w != 0 ? std::min(row.pos + 1, w) : row.pos + 1;
    }
    return weights_ + kAttentionWeight * 2.0 * c_.n_heads * c_.head_dim * keys;
  }

 private:
  static constexpr double kAttentionWeight = 12.0;
  const ModelConfig& c_;
  double weights_ = 0;
};

class LanedForward final : public Forward {
  // A share may cost this much more than an equal one: beyond, the column split, which balances
  // by (row, KV head) in attention and by columns in the matmuls, is the better deal.
  static constexpr double kImbalance = 1.25;

 public:
  LanedForward(const Model& model, const kernels::KernelTable& kt, FastOptions o)
      : model_(model),
        kt_(kt),
        pool_(o.pool),
        splits_(o.splits),
        max_batch_(o.max_batch),
        context_(o.context),
        cost_(model.config()),
        min_rows_(lane_rows(pool_->threads(), model_file(model).file_size())),
        whole_(make_fast_forward(model, kt, std::move(o))),
        lanes_(static_cast<std::size_t>(pool_->threads())) {}

  const kernels::KernelTable& kernels() const override { return whole_->kernels(); }
  std::string_view isa() const override { return whole_->isa(); }

  void run(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted,
           std::span<float> logits, const Progress* progress) override {
    if (!as_lanes(rows, wanted)) return whole_->run(rows, wanted, logits, progress);
    for (Lane& lane : lanes_) prepare(lane);
    hidden_.resize(wanted.size() * model_.config().hidden_size);
    pool_->parallel_for(lanes_.size(), [&](std::size_t t) { run_lane(lanes_[t], rows); });
    for (Lane& lane : lanes_) {
      if (lane.error) std::rethrow_exception(std::exchange(lane.error, nullptr));
    }
    // The LM head once over every lane's rows, split by columns: each lane's own head streamed
    // the whole matrix (a fifth of SmolLM2-135M's bytes) on one core for a few rows. A row's
    // logits do not depend on the rows beside it, so the bits are the same.
    whole_->head_rows(hidden_, logits.first(wanted.size() * model_.config().vocab_size));
    // One chunk, so `progress` hears nothing: only finished chunks before the last are reported.
  }

 private:
  struct Lane {
    std::unique_ptr<FastPath> forward;
    std::size_t capacity = 0;           // rows its buffers hold per chunk
    std::size_t row0 = 0, row1 = 0;     // its rows of the batch
    std::size_t want0 = 0, want1 = 0;   // its entries of `wanted`
    std::vector<std::uint32_t> wanted;  // those, counted from row0
    std::exception_ptr error;
  };

  // Whether the batch runs as lanes, which split() has then laid out: enough rows, each its own
  // sequence's only one (a decode step), that split into shares of near-equal cost. Batches with
  // prompt rows keep the column split: lanes of whole prompts' chunks measured even with it
  // (bench/RESULTS.md, session 24), and a long prompt is chunked there, with progress reports.
  bool as_lanes(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted) {
    return rows.size() >= lanes_.size() * min_rows_ && one_row_each(rows, seqs_) &&
           split(rows, wanted);
  }

  // Contiguous shares of the rows of about equal cost, and each share's wanted rows; false if the
  // costliest share exceeds an equal one by more than kImbalance (one far deeper sequence).
  bool split(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted) {
    const std::size_t n = lanes_.size();
    prefix_.assign(1, 0.0);
    for (const ForwardRow& r : rows) prefix_.push_back(prefix_.back() + cost_(r));
    const double total = prefix_.back();
    std::size_t row = 0, want = 0;
    for (std::size_t t = 0; t < n; ++t) {
      Lane& lane = lanes_[t];
      const double target = total * static_cast<double>(t + 1) / static_cast<double>(n);
      std::size_t end = row;
      while (end < rows.size() && prefix_[end + 1] <= target) ++end;
      // The next row too, if that lands nearer the target; the last lane takes the rest.
      if (end < rows.size() && target - prefix_[end] > prefix_[end + 1] - target) ++end;
      if (t + 1 == n) end = rows.size();
      if (prefix_[end] - prefix_[row] > kImbalance * total / static_cast<double>(n)) return false;
      lane.row0 = row;
      lane.row1 = end;
      lane.want0 = want;
      lane.wanted.clear();
      for (; want < wanted.size() && wanted[want] < end; ++want) {
        lane.wanted.push_back(static_cast<std::uint32_t>(wanted[want] - row));
      }
      lane.want1 = want;
      row = end;
    }
    return true;
  }

  // Buffers for the lane's rows, built (on this thread, where a failure can surface) when it has
  // none or too few. All lanes together hold at most the chunk of the column-split path: a lane
  // with more rows runs them in chunks.
  void prepare(Lane& lane) {
    const std::size_t most = (max_batch_ + lanes_.size() - 1) / lanes_.size();
    const std::size_t rows = std::min(lane.row1 - lane.row0, most);
    if (rows <= lane.capacity) return;
    const std::size_t capacity = std::min(std::max(rows, 2 * lane.capacity), most);
    FastOptions o{.pool = make_serial_pool(),
                  .splits = splits_,
                  .observer = nullptr,
                  .max_batch = static_cast<std::uint32_t>(capacity),
                  .context = context_};
    lane.forward = make_fast_forward(model_, kt_, std::move(o));
    lane.capacity = capacity;
  }

  // The lane's rows through every layer, their final-normed hidden rows into hidden_.
  void run_lane(Lane& lane, std::span<const ForwardRow> rows) {
    if (lane.row0 == lane.row1) return;
    const std::size_t d = model_.config().hidden_size;
    try {
      lane.forward->run_hidden(
          rows.subspan(lane.row0, lane.row1 - lane.row0), lane.wanted,
          std::span(hidden_).subspan(lane.want0 * d, (lane.want1 - lane.want0) * d));
    } catch (...) {
      lane.error = std::current_exception();
    }
  }

  const Model& model_;
  const kernels::KernelTable& kt_;
  std::shared_ptr<ThreadPool> pool_;
  InputSplits splits_;
  std::uint32_t max_batch_, context_;
  RowCost cost_;
  std::size_t min_rows_;             // lane_rows
  std::unique_ptr<FastPath> whole_;  // every batch that is not run as lanes, and their LM head
  std::vector<Lane> lanes_;
  std::vector<const SequenceKv*> seqs_;  // one_row_each's scratch
  std::vector<double> prefix_;           // split's: cost of the rows before each
  std::vector<float> hidden_;            // the lanes' final-normed rows, [wanted][hidden_size]
};

}  // namespace

std::unique_ptr<Forward> make_laned_forward(const Model& model, const kernels::KernelTable& kernels,
                                            FastOptions options) {
  if (!options.pool || options.pool->threads() <= 1 || options.observer) {
    return make_fast_forward(model, kernels, std::move(options));
  }
  return std::make_unique<LanedForward>(model, kernels, std::move(options));
}

}  // namespace qlm::detail
