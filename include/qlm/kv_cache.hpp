// KvCache: the keys and values of one sequence, laid out for streaming reads during attention.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "qlm/config.hpp"

namespace qlm {

/// Element type of cached keys/values.
enum class KvType : std::uint8_t { F32 };

/// Keys and values, [layer][kv_head][position][head_dim] for each of K and V: one KV head's
/// history is contiguous, so attention reads it front to back. Not copyable; use clone().
class KvCache {
 public:
  KvCache(const ModelConfig& config, std::uint32_t context, KvType type = KvType::F32);
  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&&) noexcept = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  /// A deep copy (e.g. to fork a shared prompt).
  KvCache clone() const;

  /// Keys of (layer, kv_head): [context][head_dim].
  std::span<float> keys(std::uint32_t layer, std::uint32_t kv_head);
  /// Values of (layer, kv_head): [context][head_dim].
  std::span<float> values(std::uint32_t layer, std::uint32_t kv_head);

  std::uint32_t context() const { return context_; }
  KvType type() const { return type_; }
  /// Bytes held by the cache.
  std::size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

 private:
  KvCache() = default;
  std::size_t offset(std::uint32_t layer, std::uint32_t kv_head) const {
    return (static_cast<std::size_t>(layer) * n_kv_heads_ + kv_head) * context_ * head_dim_;
  }
  std::uint32_t context_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
  KvType type_ = KvType::F32;
  std::vector<float> k_, v_;
};

}  // namespace qlm
