// KvCache storage: one anonymous page mapping, K then V. It comes straight from the OS as
// untouched zero pages, so only written positions use memory, and goes straight back when freed.
// (Through malloc, a freed cache raises glibc's mmap threshold and the next, smaller cache lands
// in the heap, whose pages stay resident after it is freed.)
#include "kv_cache.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "qlm/detail/half.hpp"

namespace qlm {

void KvCache::Free::operator()(std::byte* p) const noexcept {
  munmap(p, bytes);
}

KvCache::KvCache(const ModelConfig& c, std::uint32_t context, KvType type,
                 const kernels::KernelTable& kernels)
    : context_(context),
      n_layers_(c.n_layers),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      type_(type),
      to_f16_(kernels.f32_to_f16),
      elements_(static_cast<std::size_t>(c.n_layers) * c.n_kv_heads * context * c.head_dim) {
  allocate();
}

void KvCache::allocate() {
  const std::size_t n = std::max<std::size_t>(bytes(), 1);
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = std::unique_ptr<std::byte[], Free>(static_cast<std::byte*>(p), Free{n});
}

KvCache KvCache::clone(std::uint32_t positions) const {
  KvCache c;
  c.context_ = context_;
  c.n_layers_ = n_layers_;
  c.n_kv_heads_ = n_kv_heads_;
  c.head_dim_ = head_dim_;
  c.type_ = type_;
  c.to_f16_ = to_f16_;
  c.elements_ = elements_;
  c.allocate();
  const std::size_t run =
      static_cast<std::size_t>(std::min(positions, context_)) * head_dim_ * kv_type_size(type_);
  for (bool value : {false, true}) {
    for (std::uint32_t l = 0; l < n_layers_; ++l) {
      for (std::uint32_t h = 0; h < n_kv_heads_; ++h) {
        if (run != 0) std::memcpy(c.slab(value, l, h), slab(value, l, h), run);
      }
    }
  }
  return c;
}

std::span<float> KvCache::keys(std::uint32_t layer, std::uint32_t kv_head) {
  if (type_ != KvType::F32) return {};
  return {reinterpret_cast<float*>(slab(false, layer, kv_head)),
          static_cast<std::size_t>(context_) * head_dim_};
}

std::span<float> KvCache::values(std::uint32_t layer, std::uint32_t kv_head) {
  if (type_ != KvType::F32) return {};
  return {reinterpret_cast<float*>(slab(true, layer, kv_head)),
          static_cast<std::size_t>(context_) * head_dim_};
}

std::span<std::uint16_t> KvCache::keys_f16(std::uint32_t layer, std::uint32_t kv_head) {
  if (type_ != KvType::F16) return {};
  return {reinterpret_cast<std::uint16_t*>(slab(false, layer, kv_head)),
          static_cast<std::size_t>(context_) * head_dim_};
}

std::span<std::uint16_t> KvCache::values_f16(std::uint32_t layer, std::uint32_t kv_head) {
  if (type_ != KvType::F16) return {};
  return {reinterpret_cast<std::uint16_t*>(slab(true, layer, kv_head)),
          static_cast<std::size_t>(context_) * head_dim_};
}

const void* KvCache::key_data(std::uint32_t layer, std::uint32_t kv_head) const {
  return slab(false, layer, kv_head);
}

const void* KvCache::value_data(std::uint32_t layer, std::uint32_t kv_head) const {
  return slab(true, layer, kv_head);
}

void KvCache::store(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos,
                    std::span<const float> key, std::span<const float> value) {
  const std::size_t hd = head_dim_, at = static_cast<std::size_t>(pos) * hd;
  if (type_ == KvType::F32) {
    std::copy_n(key.data(), hd, keys(layer, kv_head).data() + at);
    std::copy_n(value.data(), hd, values(layer, kv_head).data() + at);
  } else {
    to_f16_(key.data(), keys_f16(layer, kv_head).data() + at, hd);
    to_f16_(value.data(), values_f16(layer, kv_head).data() + at, hd);
  }
}

void KvCache::load(std::uint32_t layer, std::uint32_t kv_head, std::uint32_t pos,
                   std::span<float> key, std::span<float> value) const {
  const std::size_t hd = head_dim_, at = static_cast<std::size_t>(pos) * hd;
  if (type_ == KvType::F32) {
    std::memcpy(key.data(), reinterpret_cast<const float*>(key_data(layer, kv_head)) + at, hd * 4);
    std::memcpy(value.data(), reinterpret_cast<const float*>(value_data(layer, kv_head)) + at,
                hd * 4);
  } else {
    const auto* k = reinterpret_cast<const std::uint16_t*>(key_data(layer, kv_head)) + at;
    const auto* v = reinterpret_cast<const std::uint16_t*>(value_data(layer, kv_head)) + at;
    for (std::size_t i = 0; i < hd; ++i) {
      key[i] = detail::f16_to_f32(k[i]);
      value[i] = detail::f16_to_f32(v[i]);
    }
  }
}

}  // namespace qlm
