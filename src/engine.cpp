// Engine: validates batches, keeps the sequences' page tables, and runs one Forward over the rows
// of every item of a batch.
#include "qlm/engine.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "arch/forward.hpp"
#include "kv/kv_identity.hpp"
#include "kv/kv_pool.hpp"
#include "kv/sequence_file.hpp"
#include "kv/sequence_kv.hpp"
#include "model_access.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

std::uint32_t resolve_pages(const ModelConfig& c, const EngineOptions& o, std::uint32_t context) {
  const std::size_t page = detail::KvPool::page_bytes(c, o.kv_type);
  if (o.kv_bytes == 0) {
    return static_cast<std::uint32_t>(4 * detail::KvLayout::of(c).max_pages(context, context));
  }
  const std::size_t pages = o.kv_bytes / page;
  if (pages == 0) {
    fail(ErrorCode::InvalidArgument, "kv_bytes {} holds no KV page ({} bytes for {} tokens)",
         o.kv_bytes, page, kKvPageTokens);
  }
  if (pages > (1u << 26)) {
    fail(ErrorCode::InvalidArgument, "kv_bytes {} is absurd ({} pages; at most {})", o.kv_bytes,
         pages, 1u << 26);
  }
  return static_cast<std::uint32_t>(pages);
}

SessionOptions forward_options(const EngineOptions& o) {
  return {.threads = o.threads,
          .kv_type = o.kv_type,
          .isa = o.isa,
          .pool = o.pool,
          .batch = o.batch,
          .activations = o.activations};
}

}  // namespace

struct Engine::Impl {
  std::shared_ptr<const Model> model;
  std::uint32_t context;
  std::unique_ptr<detail::Forward> forward;
  detail::KvPool pool;  // before `sequences`, which release into it when destroyed
  std::unordered_map<SequenceId, detail::SequenceKv> sequences;
  SequenceId next_id = 1;
  std::vector<detail::ForwardRow> rows;
  std::vector<std::uint32_t> wanted;
  std::vector<float> logits;

  Impl(std::shared_ptr<const Model> m, const EngineOptions& o)
      : model(std::move(m)),
        context(detail::resolve_context(*model, o.kv_type, o.context)),
        forward(detail::make_forward(*model, forward_options(o), context)),
        pool(model->config(), resolve_pages(model->config(), o, context), o.kv_type,
             detail::KvPool::seed_for(detail::kv_identity(*model, context), o.kv_type),
             forward->kernels(), {.cache_past_window = true, .huge_pages = o.huge_pages}) {}

  // Names the model file and, for longrope, the factors this context chose (kv_identity).
  std::uint64_t model_id() const { return detail::kv_identity(*model, context); }

  detail::SequenceKv& find(SequenceId id, const char* what) {
    auto it = sequences.find(id);
    if (it == sequences.end()) fail(ErrorCode::InvalidArgument, "{}: no sequence {}", what, id);
    return it->second;
  }

  void check(std::span<const BatchItem> items);
  BatchLogits run(std::span<const BatchItem> items);
};

void Engine::Impl::check(std::span<const BatchItem> items) {
  if (items.empty()) fail(ErrorCode::InvalidArgument, "eval: the batch is empty");
  const std::uint32_t vocab = model->config().vocab_size;
  std::unordered_set<SequenceId> seen;
  std::uint64_t pages = 0;
  for (const BatchItem& item : items) {
    const detail::SequenceKv& s = find(item.sequence, "eval");
    if (!seen.insert(item.sequence).second) {
      fail(ErrorCode::InvalidArgument, "eval: sequence {} appears twice in one batch",
           item.sequence);
    }
    if (item.tokens.empty()) {
      fail(ErrorCode::InvalidArgument, "eval: no tokens for sequence {}", item.sequence);
    }
    for (std::int32_t t : item.tokens) {
      if (t < 0 || static_cast<std::uint32_t>(t) >= vocab) {
        fail(ErrorCode::InvalidArgument, "eval: token id {} is outside the vocabulary [0, {})", t,
             vocab);
      }
    }
    if (item.tokens.size() > context - s.size()) {
      fail(ErrorCode::ContextFull,
           "eval: {} tokens at position {} of sequence {} exceed the context of {} tokens",
           item.tokens.size(), s.size(), item.sequence, context);
    }
    pages += s.pages_needed(static_cast<std::uint32_t>(item.tokens.size()));
  }
  if (pages > pool.available()) {
    fail(ErrorCode::PoolFull,
         "eval: the batch needs {} KV pages; {} of the pool's {} are available", pages,
         pool.available(), pool.capacity());
  }
}

BatchLogits Engine::Impl::run(std::span<const BatchItem> items) {
  rows.clear();
  wanted.clear();
  std::vector<std::size_t> first_row;
  for (const BatchItem& item : items) {
    detail::SequenceKv& s = sequences.at(item.sequence);
    first_row.push_back(wanted.size());
    const auto row0 = static_cast<std::uint32_t>(rows.size());
    const auto n = static_cast<std::uint32_t>(item.tokens.size());
    for (std::uint32_t j = 0; j < n; ++j) rows.push_back({item.tokens[j], s.size() + j, &s});
    if (item.logits == LogitsWanted::Last) wanted.push_back(row0 + n - 1);
    if (item.logits == LogitsWanted::All) {
      for (std::uint32_t j = 0; j < n; ++j) wanted.push_back(row0 + j);
    }
  }
  first_row.push_back(wanted.size());
  logits.resize(wanted.size() * model->config().vocab_size);
  try {
    for (const BatchItem& item : items) {
      sequences.at(item.sequence).reserve(static_cast<std::uint32_t>(item.tokens.size()));
    }
    forward->run(rows, wanted, logits);
  } catch (...) {
    for (const BatchItem& item : items) sequences.at(item.sequence).trim();
    throw;
  }
  for (const BatchItem& item : items) sequences.at(item.sequence).append(item.tokens);
  return BatchLogits(logits, std::move(first_row), model->config().vocab_size);
}

Result<Engine> Engine::create(std::shared_ptr<const Model> model, EngineOptions options) {
  return detail::capture([&] {
    if (!model) fail(ErrorCode::InvalidArgument, "Engine::create: model is null");
    return Engine(std::make_unique<Impl>(std::move(model), options));
  });
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

SequenceId Engine::add() {
  const SequenceId id = impl_->next_id++;
  impl_->sequences.emplace(id, detail::SequenceKv(impl_->pool));
  return id;
}

Result<SequenceId> Engine::fork(SequenceId parent) {
  return detail::capture([&] {
    detail::SequenceKv copy = impl_->find(parent, "fork").fork();
    const SequenceId id = impl_->next_id++;
    impl_->sequences.emplace(id, std::move(copy));
    return id;
  });
}

Result<void> Engine::remove(SequenceId sequence) {
  return detail::capture([&] {
    impl_->find(sequence, "remove");
    impl_->sequences.erase(sequence);
  });
}

Result<std::uint32_t> Engine::truncate(SequenceId sequence, std::uint32_t n) {
  return detail::capture([&] {
    detail::SequenceKv& s = impl_->find(sequence, "truncate");
    if (n > s.size()) {
      fail(ErrorCode::InvalidArgument, "truncate: {} is beyond the {} tokens of sequence {}", n,
           s.size(), sequence);
    }
    return s.truncate(n);
  });
}

Result<std::uint32_t> Engine::reuse_prefix(SequenceId sequence,
                                           std::span<const std::int32_t> prompt) {
  return detail::capture([&] {
    detail::SequenceKv& s = impl_->find(sequence, "reuse_prefix");
    if (s.size() != 0) {
      fail(ErrorCode::InvalidArgument, "reuse_prefix: sequence {} already holds {} tokens",
           sequence, s.size());
    }
    if (prompt.empty()) return 0u;
    const auto max =
        static_cast<std::uint32_t>(std::min<std::size_t>(prompt.size() - 1, impl_->context));
    return s.adopt(prompt, max);
  });
}

Result<BatchLogits> Engine::eval(std::span<const BatchItem> items) {
  return detail::capture([&] {
    impl_->check(items);
    return impl_->run(items);
  });
}

Result<void> Engine::save(SequenceId sequence, const std::filesystem::path& path) const {
  return detail::capture(
      [&] { detail::save_sequence(path, impl_->find(sequence, "save"), impl_->model_id()); });
}

Result<SequenceId> Engine::restore(const std::filesystem::path& path) {
  return detail::capture([&] {
    detail::SequenceKv seq(impl_->pool);
    detail::restore_sequence(path, seq, impl_->model_id(), impl_->context,
                             impl_->model->config().vocab_size);
    const SequenceId id = impl_->next_id++;
    impl_->sequences.emplace(id, std::move(seq));
    return id;
  });
}

Result<std::span<const std::int32_t>> Engine::tokens(SequenceId sequence) const {
  return detail::capture([&] { return impl_->find(sequence, "tokens").tokens(); });
}

std::uint32_t Engine::pages_needed(SequenceId sequence, std::uint32_t n) const {
  auto it = impl_->sequences.find(sequence);
  return it == impl_->sequences.end() ? 0 : it->second.pages_needed(n);
}

std::uint64_t Engine::max_pages(std::uint64_t tokens, std::uint32_t chunk) const {
  return impl_->pool.layout().max_pages(tokens, chunk);
}

KvPoolStats Engine::pool_stats() const {
  return impl_->pool.stats();
}
std::uint32_t Engine::context_size() const {
  return impl_->context;
}
std::size_t Engine::sequences() const {
  return impl_->sequences.size();
}
const Model& Engine::model() const {
  return *impl_->model;
}
std::string_view Engine::isa() const {
  return impl_->forward->isa();
}

}  // namespace qlm
