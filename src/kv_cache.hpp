// KvCache: the keys and values of one sequence, laid out for streaming reads during attention.
// Internal: sessions own one each; the application sees only its KvType (qlm/kv_type.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "kernel_table.hpp"
#include "qlm/config.hpp"
#include "qlm/kv_type.hpp"

namespace qlm {

/// Keys and values, [layer][kv_head][position][head_dim] for each of K and V: one KV head's
/// history is contiguous, so attention reads it front to back. Not copyable; use clone().
///
/// The storage is allocated once and left untouched: a position holds no defined value until it
/// is written, and the memory pages behind it are only committed when it is, so resident memory
/// grows with the tokens stored, not with the context. Readers must read only positions that were
/// written (a Session reads positions [0, position()) only).
class KvCache {
 public:
  /// Stores f16 through `kernels`' converter (every ISA's is bit-identical to detail::f32_to_f16;
  /// the fast path's is vectorized). Throws std::bad_alloc when the address space is exhausted.
  KvCache(const ModelConfig& config, std::uint32_t context, KvType type = KvType::F32,
          const kernels::KernelTable& kernels = kernels::kernels_for(kernels::Isa::Scalar));
  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&&) noexcept = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  /// A deep copy of positions [0, positions) of every (layer, kv_head) (e.g. to fork a shared
  /// prompt); later positions of the copy are unwritten. positions <= context().
  KvCache clone(std::uint32_t positions) const;
  /// clone(context()): copies (and so commits) the whole cache.
  KvCache clone() const { return clone(context_); }

  /// Keys of (layer, kv_head) as [context][head_dim] floats; empty unless type() == F32.
  std::span<float> keys(std::uint32_t layer, std::uint32_t kv_head);
  /// Values of (layer, kv_head) as [context][head_dim] floats; empty unless type() == F32.
  std::span<float> values(std::uint32_t layer, std::uint32_t kv_head);
  /// Keys of (layer, kv_head) as [context][head_dim] f16 bits; empty unless type() == F16.
  std::span<std::uint16_t> keys_f16(std::uint32_t layer, std::uint32_t kv_head);
  /// Values of (layer, kv_head) as [context][head_dim] f16 bits; empty unless type() == F16.
  std::span<std::uint16_t> values_f16(std::uint32_t layer, std::uint32_t kv_head);
  /// Raw storage of (layer, kv_head): [context][head_dim] elements of type().
  const void* key_data(std::uint32_t layer, std::uint32_t kv_head) const;
  const void* value_data(std::uint32_t layer, std::uint32_t kv_head) const;

  /// Writes one position's key and value (head_dim floats each), converting to type() (f16:
  /// round to nearest even, overflow to infinity). The only writer of cached keys and values.
  void store(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos,
             std::span<const float> key, std::span<const float> value);
  /// Reads one written position's key and value back as floats (exact for either type).
  void load(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos, std::span<float> key,
            std::span<float> value) const;

  std::uint32_t context() const { return context_; }
  std::uint32_t head_dim() const { return head_dim_; }
  KvType type() const { return type_; }
  /// Bytes allocated for keys and values: 2 * layers * kv_heads * context * head_dim * element size
  /// (the resident part is what has been written, see above).
  std::size_t bytes() const { return 2 * elements_ * kv_type_size(type_); }

 private:
  struct Free {
    std::size_t bytes;  // length of the mapping (no initializer: KvCache is not complete yet)
    void operator()(std::byte* p) const noexcept;
  };
  KvCache() = default;
  // Element offset of (layer, kv_head)'s first position within K (V starts at elements_).
  std::size_t offset(std::uint32_t layer, std::uint32_t kv_head) const {
    return (static_cast<std::size_t>(layer) * n_kv_heads_ + kv_head) * context_ * head_dim_;
  }
  std::byte* slab(bool value, std::uint32_t layer, std::uint32_t kv_head) const {
    return data_.get() + ((value ? elements_ : 0) + offset(layer, kv_head)) * kv_type_size(type_);
  }
  void allocate();

  std::uint32_t context_ = 0, n_layers_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
  KvType type_ = KvType::F32;
  void (*to_f16_)(const float*, std::uint16_t*, std::size_t) = nullptr;
  std::size_t elements_ = 0;  // elements of K (= of V)
  std::unique_ptr<std::byte[], Free> data_;
};

}  // namespace qlm
