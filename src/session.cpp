// Session: validates requests and runs one sequence through a Forward, over a private KV pool
// just large enough for its context.
#include "qlm/session.hpp"

#include <algorithm>

#include "arch/forward.hpp"
#include "kv/kv_identity.hpp"
#include "kv/kv_pool.hpp"
#include "kv/sequence_kv.hpp"
#include "model_access.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

// Tokens per step of a long evaluation on a model with sliding-window layers: the window's pages
// are let go between steps, so the cache never holds a long prompt's keys in those layers.
constexpr std::uint32_t kWindowStep = 8 * kKvPageTokens;

// The Session's pool: the context in every layer group; with sliding layers, the window, one
// step and the window pinned at the evaluation's start instead (SequenceKv::pin).
std::uint32_t session_pages(const ModelConfig& c, std::uint32_t context) {
  const detail::KvLayout k = detail::KvLayout::of(c);
  std::uint64_t pages = k.max_pages(context, kWindowStep);
  for (std::uint32_t g = 0; g < k.groups(); ++g) {
    if (k.sliding(g)) pages += (k.window + 2 * kKvPageTokens - 2) / kKvPageTokens;
  }
  return static_cast<std::uint32_t>(pages);
}

}  // namespace

struct Session::Impl {
  std::shared_ptr<const Model> model;
  std::unique_ptr<detail::Forward> forward;
  std::uint32_t context;
  detail::KvPool pool;
  detail::SequenceKv seq;             // evaluated tokens and their keys and values
  std::vector<std::int32_t> pending;  // deferred by defer(), evaluated by the next eval()
  std::vector<detail::ForwardRow> rows;
  std::vector<std::uint32_t> wanted;
  std::vector<std::uint32_t> wanted_here;  // run_rows' slice of `wanted`, kept to reuse its buffer
  std::vector<float> logits;

  Impl(std::shared_ptr<const Model> m, std::unique_ptr<detail::Forward> f, std::uint32_t ctx,
       KvType kv_type)
      : model(std::move(m)),
        forward(std::move(f)),
        context(ctx),
        // Pages that leave a sliding window are freed and reused, not cached.
        pool(model->config(), session_pages(model->config(), ctx), kv_type,
             detail::KvPool::seed_for(detail::kv_identity(*model, ctx), kv_type),
             forward->kernels(), {.cache_past_window = false, .huge_pages = false}),
        seq(pool) {}

  // Runs rows [first, first + count) of `rows`, writing the logits of the wanted ones among them.
  void run_rows(std::size_t first, std::size_t count, const EvalOptions& options) {
    const auto lo = std::lower_bound(wanted.begin(), wanted.end(), first);
    const auto hi = std::lower_bound(wanted.begin(), wanted.end(), first + count);
    std::vector<std::uint32_t>& local = wanted_here;
    local.assign(lo, hi);
    for (auto& w : local) w -= static_cast<std::uint32_t>(first);
    const std::size_t vocab = model->config().vocab_size;
    const auto out = std::span(logits).subspan((lo - wanted.begin()) * vocab, local.size() * vocab);
    const detail::Progress progress = [&](std::size_t done) {
      return options.on_progress(static_cast<std::uint32_t>(first + done),
                                 static_cast<std::uint32_t>(rows.size()));
    };
    forward->run(std::span(rows).subspan(first, count), local, out,
                 options.on_progress ? &progress : nullptr);
  }

  // A long evaluation on a model with sliding-window layers, kWindowStep tokens at a time; on
  // failure the sequence rolls back to where it started (the window there stays pinned).
  // `deferred`: how many of `run`'s tokens were pending before this call.
  void eval_in_steps(std::span<const std::int32_t> run, const EvalOptions& options,
                     std::size_t deferred) {
    detail::SequenceKv::Pin pin = seq.pin();
    const std::size_t n = run.size();
    try {
      for (std::size_t first = 0; first < n; first += kWindowStep) {
        const std::size_t count = std::min<std::size_t>(kWindowStep, n - first);
        seq.reserve(static_cast<std::uint32_t>(count));
        run_rows(first, count, options);
        seq.append(run.subspan(first, count));
        if (first + count < n && options.on_progress &&
            !options.on_progress(static_cast<std::uint32_t>(first + count),
                                 static_cast<std::uint32_t>(n))) {
          fail(ErrorCode::Cancelled, "evaluation cancelled after {} of {} tokens", first + count,
               n);
        }
      }
    } catch (...) {
      seq.trim();
      seq.rollback(pin);
      pending.resize(deferred);  // the caller's tokens were appended to the deferred ones
      throw;
    }
    seq.unpin(pin);
  }
};

Result<Session> Session::create(std::shared_ptr<const Model> model, SessionOptions options) {
  return detail::capture([&] {
    if (!model) fail(ErrorCode::InvalidArgument, "Session::create: model is null");
    const std::uint32_t context = detail::resolve_context(*model, options.kv_type, options.context);
    auto forward = detail::make_forward(*model, options, context);
    return Session(std::make_unique<Impl>(model, std::move(forward), context, options.kv_type));
  });
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

namespace {

void check_ids(std::span<const std::int32_t> tokens, std::uint32_t vocab_size, const char* what) {
  for (std::int32_t t : tokens) {
    if (t < 0 || static_cast<std::uint32_t>(t) >= vocab_size) {
      fail(ErrorCode::InvalidArgument, "{}: token id {} is outside the vocabulary [0, {})", what, t,
           vocab_size);
    }
  }
}

}  // namespace

Result<std::span<const float>> Session::eval(std::span<const std::int32_t> tokens,
                                             EvalOptions options) {
  return detail::capture([&]() -> std::span<const float> {
    Impl& s = *impl_;
    const ModelConfig& c = s.model->config();
    if (tokens.empty() && s.pending.empty()) fail(ErrorCode::InvalidArgument, "eval: no tokens");
    check_ids(tokens, c.vocab_size, "eval");
    const std::size_t pos = s.seq.size();
    const std::size_t n = s.pending.size() + tokens.size();
    if (n > s.context - pos) {
      fail(ErrorCode::ContextFull,
           "eval: {} tokens at position {} exceed the session context of {} tokens", n, pos,
           s.context);
    }
    std::span<const std::int32_t> run = tokens;
    if (!s.pending.empty()) {
      s.pending.insert(s.pending.end(), tokens.begin(), tokens.end());
      run = s.pending;
    }
    s.rows.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      s.rows[i] = {run[i], static_cast<std::uint32_t>(pos + i), &s.seq};
    }
    s.wanted.clear();
    for (std::size_t i = options.all_logits ? 0 : n - 1; i < n; ++i) {
      s.wanted.push_back(static_cast<std::uint32_t>(i));
    }
    s.logits.resize(s.wanted.size() * c.vocab_size);
    if (s.pool.layout().window != 0 && n > kWindowStep) {
      s.eval_in_steps(run, options, n - tokens.size());
    } else {
      try {
        s.seq.reserve(static_cast<std::uint32_t>(n));
        s.run_rows(0, n, options);
      } catch (...) {
        s.seq.trim();
        s.pending.resize(n - tokens.size());  // unchanged on failure
        throw;
      }
      s.seq.append(run);
    }
    const std::size_t skipped = n - std::max<std::size_t>(tokens.size(), 1);
    s.pending.clear();
    // The rows of deferred tokens are not the caller's: the view starts at `tokens`' first.
    return std::span<const float>(s.logits).subspan(options.all_logits ? skipped * c.vocab_size
                                                                       : 0);
  });
}

Result<void> Session::defer(std::int32_t token) {
  return detail::capture([&] {
    Impl& s = *impl_;
    check_ids({&token, 1}, s.model->config().vocab_size, "defer");
    if (s.seq.size() + s.pending.size() >= s.context) {
      fail(ErrorCode::ContextFull, "defer: the session context of {} tokens is full", s.context);
    }
    s.pending.push_back(token);
  });
}

Result<std::uint32_t> Session::truncate(std::uint32_t n) {
  Impl& s = *impl_;
  const std::size_t total = s.seq.size() + s.pending.size();
  if (n > total) {
    return Error{ErrorCode::InvalidArgument, fmt::format("truncate: {} is beyond the {} tokens of "
                                                         "the sequence",
                                                         n, total)};
  }
  if (n <= s.seq.size()) {
    s.pending.clear();
    return s.seq.truncate(n);  // later positions are copied or overwritten before they're read
  }
  s.pending.resize(n - s.seq.size());
  return n;
}

std::uint32_t Session::position() const {
  return impl_->seq.size();
}
std::uint32_t Session::context_size() const {
  return impl_->context;
}
std::span<const std::int32_t> Session::tokens() const {
  return impl_->seq.tokens();
}
std::span<const std::int32_t> Session::pending() const {
  return impl_->pending;
}
const Model& Session::model() const {
  return *impl_->model;
}
std::string_view Session::isa() const {
  return impl_->forward->isa();
}
KvType Session::kv_type() const {
  return impl_->pool.type();
}
std::size_t Session::kv_bytes() const {
  return std::size_t{impl_->pool.capacity()} * impl_->pool.page_size();
}

}  // namespace qlm
