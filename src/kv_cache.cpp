// KvCache storage.
#include "qlm/kv_cache.hpp"

namespace qlm {

KvCache::KvCache(const ModelConfig& c, std::uint32_t context, KvType type)
    : context_(context), n_kv_heads_(c.n_kv_heads), head_dim_(c.head_dim), type_(type) {
  const std::size_t n = static_cast<std::size_t>(c.n_layers) * c.n_kv_heads * context * c.head_dim;
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

KvCache KvCache::clone() const {
  KvCache c;
  c.context_ = context_;
  c.n_kv_heads_ = n_kv_heads_;
  c.head_dim_ = head_dim_;
  c.type_ = type_;
  c.k_ = k_;
  c.v_ = v_;
  return c;
}

std::span<float> KvCache::keys(std::uint32_t layer, std::uint32_t kv_head) {
  return {k_.data() + offset(layer, kv_head), static_cast<std::size_t>(context_) * head_dim_};
}

std::span<float> KvCache::values(std::uint32_t layer, std::uint32_t kv_head) {
  return {v_.data() + offset(layer, kv_head), static_cast<std::size_t>(context_) * head_dim_};
}

}  // namespace qlm
