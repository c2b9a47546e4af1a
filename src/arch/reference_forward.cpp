// Reference forward pass: one token at a time, every op from ops/reference_ops.hpp, fp32
// activations, weights dequantized on the fly. Slow, simple, and the yardstick for the fast path.
#include "arch/reference_forward.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "model_access.hpp"
#include "ops/reference_ops.hpp"
#include "qlm/quant/quantize.hpp"

namespace qlm::detail {
namespace {

class ReferenceForward final : public Forward {
 public:
  ReferenceForward(const Model& model, std::uint32_t context)
      : c_(model.config()),
        w_(model_weights(model)),
        inv_freq_(ref::rope_inv_freq(c_, false, context)),
        local_inv_freq_(ref::rope_inv_freq(c_, true, context)),
        mscale_(ref::rope_mscale(c_)),
        x_(c_.hidden_size),
        xb_(c_.hidden_size),
        q_(c_.n_heads * c_.head_dim),
        k_(c_.n_kv_heads * c_.head_dim),
        v_(c_.n_kv_heads * c_.head_dim),
        att_out_(c_.n_heads * c_.head_dim),
        gate_(c_.intermediate_size),
        up_(c_.intermediate_size),
        key_(c_.head_dim),
        value_(c_.head_dim) {}

  const kernels::KernelTable& kernels() const override {
    return kernels::kernels_for(kernels::Isa::Scalar);
  }
  std::string_view isa() const override { return "reference"; }

  void run(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted,
           std::span<float> logits, const Progress* progress) override {
    std::size_t next = 0;  // index into wanted
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const bool want = next < wanted.size() && wanted[next] == i;
      token(rows[i].token, rows[i].pos, *rows[i].kv,
            want ? logits.subspan(next * c_.vocab_size, c_.vocab_size) : std::span<float>{});
      if (want) ++next;
      report(progress, i + 1, rows.size());
    }
  }

 private:
  void token(std::int32_t id, std::uint32_t pos, SequenceKv& cache, std::span<float> logits) {
    w_.embed.dequantize_row(static_cast<std::uint32_t>(id), x_);
    if (c_.gemma()) {  // Gemma scales its (tied) embeddings by sqrt(hidden_size) on the way in
      const float s = std::sqrt(static_cast<float>(c_.hidden_size));
      for (float& v : x_) v *= s;
    }
    for (std::uint32_t l = 0; l < c_.n_layers; ++l) {
      attention(l, pos, cache);
      mlp(l);
    }
    if (logits.empty()) return;
    norm(xb_, x_, w_.final_norm, w_.final_norm_b);
    ref::matvec(logits, w_.lm_head, xb_);
  }

  void attention(std::uint32_t l, std::uint32_t pos, SequenceKv& cache) {
    const LayerWeights& lw = w_.layers[l];
    const std::uint32_t hd = c_.head_dim;
    norm(xb_, x_, lw.attn_norm, lw.attn_norm_b);
    ref::matvec(q_, lw.wq, xb_, lw.bq);
    ref::matvec(k_, lw.wk, xb_, lw.bk);
    ref::matvec(v_, lw.wv, xb_, lw.bv);
    const std::vector<float>& inv_freq = c_.sliding(l) ? local_inv_freq_ : inv_freq_;
    for (std::uint32_t h = 0; h < c_.n_heads; ++h) {
      if (!lw.q_norm.empty())
        ref::rmsnorm({&q_[h * hd], hd}, {&q_[h * hd], hd}, lw.q_norm, c_.rms_norm_eps);
      ref::rope({&q_[h * hd], c_.rope_dim()}, inv_freq, pos, mscale_);
    }
    for (std::uint32_t h = 0; h < c_.n_kv_heads; ++h) {
      if (!lw.k_norm.empty())
        ref::rmsnorm({&k_[h * hd], hd}, {&k_[h * hd], hd}, lw.k_norm, c_.rms_norm_eps);
      ref::rope({&k_[h * hd], c_.rope_dim()}, inv_freq, pos, mscale_);
      cache.store(l, h, pos, {&k_[h * hd], hd}, {&v_[h * hd], hd});  // f16: rounded here
    }
    // A sliding window: a query at `pos` sees keys in (pos - window, pos].
    const std::uint32_t window = c_.window(l);
    const std::uint32_t first = window && pos >= window ? pos - window + 1 : 0;
    const float scale = c_.attention_scale();
    std::vector<float> scores(pos + 1 - first);
    for (std::uint32_t h = 0; h < c_.n_heads; ++h) {
      const std::uint32_t kvh = h / (c_.n_heads / c_.n_kv_heads);
      const float* q = &q_[h * hd];
      for (std::uint32_t t = first; t <= pos; ++t) {
        cache.load(l, kvh, t, key_, value_);
        float dot = 0.0f;
        for (std::uint32_t i = 0; i < hd; ++i) dot += q[i] * key_[i];
        scores[t - first] = dot * scale;
      }
      ref::softmax(scores);
      float* out = &att_out_[h * hd];
      std::fill(out, out + hd, 0.0f);
      for (std::uint32_t t = first; t <= pos; ++t) {
        cache.load(l, kvh, t, key_, value_);
        for (std::uint32_t i = 0; i < hd; ++i) out[i] += scores[t - first] * value_[i];
      }
    }
    ref::matvec(xb_, lw.wo, att_out_, lw.bo);
    if (!lw.post_attn_norm.empty()) ref::rmsnorm(xb_, xb_, lw.post_attn_norm, c_.rms_norm_eps);
    for (std::uint32_t i = 0; i < c_.hidden_size; ++i) x_[i] += xb_[i];
  }

  void mlp(std::uint32_t l) {
    const LayerWeights& lw = w_.layers[l];
    norm(xb_, x_, lw.ffn_norm, lw.ffn_norm_b);
    if (c_.gated_mlp()) {
      ref::matvec(gate_, lw.w_gate, xb_);
      ref::matvec(up_, lw.w_up, xb_);
      if (c_.gemma()) {
        ref::gelu_tanh_mul(gate_, up_);
      } else {
        ref::silu_mul(gate_, up_);
      }
    } else {  // starcoder2: c_fc -> gelu (tanh) -> c_proj
      ref::matvec(gate_, lw.w_up, xb_, lw.b_up);
      ref::gelu_tanh(gate_);
    }
    ref::matvec(xb_, lw.w_down, gate_, lw.b_down);
    if (!lw.post_ffn_norm.empty()) ref::rmsnorm(xb_, xb_, lw.post_ffn_norm, c_.rms_norm_eps);
    for (std::uint32_t i = 0; i < c_.hidden_size; ++i) x_[i] += xb_[i];
  }

  // RMSNorm, or LayerNorm with its bias (starcoder2).
  void norm(std::span<float> out, std::span<const float> x, std::span<const float> w,
            std::span<const float> b) const {
    if (c_.layer_norm()) {
      ref::layernorm(out, x, w, b, c_.rms_norm_eps);
    } else {
      ref::rmsnorm(out, x, w, c_.rms_norm_eps);
    }
  }

  const ModelConfig& c_;
  const ModelWeights& w_;
  std::vector<float> inv_freq_, local_inv_freq_;  // global layers, sliding-window layers
  float mscale_;                                  // cos/sin scale (longrope)
  std::vector<float> x_, xb_, q_, k_, v_, att_out_, gate_, up_;  // activations of one token
  std::vector<float> key_, value_;  // one cached position, read back as f32
};

}  // namespace

std::unique_ptr<Forward> make_reference_forward(const Model& model, std::uint32_t context) {
  return std::make_unique<ReferenceForward>(model, context);
}

}  // namespace qlm::detail
