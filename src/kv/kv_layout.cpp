// KvLayout: grouping the layers of a model into page tables.
#include "kv/kv_layout.hpp"

#include <algorithm>
#include <numeric>

namespace qlm::detail {
namespace {

std::uint64_t pages_for(std::uint64_t tokens) {
  return (tokens + kKvPageTokens - 1) / kKvPageTokens;
}

}  // namespace

KvLayout KvLayout::of(const ModelConfig& c) {
  std::vector<std::uint32_t> global, local;
  for (std::uint32_t l = 0; l < c.n_layers; ++l) (c.sliding(l) ? local : global).push_back(l);
  KvLayout k;
  k.group_layers =
      std::gcd(static_cast<std::uint32_t>(global.size()), static_cast<std::uint32_t>(local.size()));
  k.window = local.empty() ? 0 : c.sliding_window;
  k.group_of.resize(c.n_layers);
  k.slot_of.resize(c.n_layers);
  std::uint32_t group = 0;
  for (const auto* layers : {&global, &local}) {
    for (std::size_t i = 0; i < layers->size(); ++i) {
      const std::uint32_t l = (*layers)[i];
      k.group_of[l] = group + static_cast<std::uint32_t>(i / k.group_layers);
      k.slot_of[l] = static_cast<std::uint32_t>(i % k.group_layers);
    }
    const auto n = static_cast<std::uint32_t>(layers->size() / k.group_layers);
    k.group_sliding.insert(k.group_sliding.end(), n, layers == &local ? 1 : 0);
    group += n;
  }
  return k;
}

std::uint64_t KvLayout::max_pages(std::uint64_t tokens, std::uint32_t chunk) const {
  std::uint64_t total = 0;
  for (std::uint32_t g = 0; g < groups(); ++g) {
    // A sliding group holds pages [first_kept_page(size), pages_for(size + chunk)).
    const std::uint64_t span = std::uint64_t{window} - 1 + kTruncateSlack + std::max(chunk, 1u);
    total += sliding(g) ? std::min(pages_for(tokens), pages_for(span) + 1) : pages_for(tokens);
  }
  return total;
}

}  // namespace qlm::detail

namespace qlm {

std::size_t kv_sequence_bytes(const ModelConfig& config, KvType type, std::uint32_t tokens,
                              std::uint32_t chunk) {
  const detail::KvLayout k = detail::KvLayout::of(config);
  const std::size_t page = 2 * std::size_t{k.group_layers} * config.n_kv_heads * config.head_dim *
                           kKvPageTokens * kv_type_size(type);
  return page * k.max_pages(tokens, chunk);
}

}  // namespace qlm
