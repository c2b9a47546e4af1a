// Fast forward pass of the Llama family. A batch of m tokens flows through each layer as [m][dim]
// matrices: one activation quantization feeds q/k/v (and gate/up), attention runs per (token, KV
// head) task, and only the rows whose logits are wanted go through the LM head. Each row-wise step
// before a matmul (residual, norm; SiLU) quantizes its rows in the same parallel region.
#include "arch/fast_forward.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "model_access.hpp"
#include "ops/attention.hpp"
#include "ops/matmul.hpp"
#include "ops/reference_ops.hpp"
#include "ops/row_tasks.hpp"
#include "qlm/quant/quantize.hpp"
#include "util/fail.hpp"

namespace qlm::detail {
namespace {

// Whether a matrix's inputs get two int8 passes.
bool two_passes(const Matrix& w, ActivationPrecision activations) {
  switch (activations) {
    case ActivationPrecision::Int8:
      return false;
    case ActivationPrecision::Int8x2:
      return w.any_quantized();
    case ActivationPrecision::Auto:
      return w.has(DType::Q8);
  }
  return false;
}

// Two passes for an input if any matrix reading it asks for them (a fused q/k/v or gate/up of a
// mixed file may hold both q8 and q4 weights; the q4 ones just get exact-er inputs).
bool any_two(std::initializer_list<const Matrix*> readers, ActivationPrecision activations) {
  return std::any_of(readers.begin(), readers.end(),
                     [&](const Matrix* w) { return two_passes(*w, activations); });
}

// Widest matrix input of a layer (the quantized-activation buffers hold one).
std::size_t widest_input(const ModelConfig& c) {
  return std::max<std::size_t>({c.hidden_size, c.intermediate_size, c.n_heads * c.head_dim});
}

// Bytes of activation buffers the fast path holds per token of a chunk (the float rows below,
// the quantized rows, and with two passes the residual and the doubled matmul output).
std::size_t buffer_bytes_per_token(const ModelConfig& c, bool split) {
  const std::size_t d = c.hidden_size, qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim,
                    k = widest_input(c);
  const std::size_t floats = 2 * d + qd + 2 * kvd + std::max<std::size_t>(c.intermediate_size, qd) +
                             c.intermediate_size + c.head_dim;
  const std::size_t quantized = (split ? 2 : 1) * (k + k / kernels::kActBlock * 8);
  const std::size_t two_pass =
      split ? (k + std::max<std::size_t>(qd + 2 * kvd, 2 * c.intermediate_size)) : 0;
  return 4 * (floats + two_pass) + quantized;
}

class FastForward final : public FastPath {
 public:
  FastForward(const Model& model, const kernels::KernelTable& kt, FastOptions o)
      : c_(model.config()),
        w_(model_weights(model)),
        kt_(kt),
        pool_(std::move(o.pool)),
        batch_(std::max(1u, o.max_batch)),
        inv_freq_(ref::rope_inv_freq(c_, false, o.context)),
        local_inv_freq_(ref::local_rope(c_) ? ref::rope_inv_freq(c_, true, o.context)
                                            : std::vector<float>{}),
        mscale_(ref::rope_mscale(c_)),
        qd_(c_.n_heads * c_.head_dim),
        kvd_(c_.n_kv_heads * c_.head_dim),
        splits_(std::move(o.splits)),
        observer_(std::move(o.observer)) {
    const std::size_t b = batch_;
    x_.resize(b * c_.hidden_size);
    xb_.resize(b * c_.hidden_size);
    q_.resize(b * qd_);
    k_.resize(b * kvd_);
    v_.resize(b * kvd_);
    // gate_ also holds the attention output (att below): the MLP is not running then, and a
    // float matmul reads its input while writing its output, so att may not share with xb_.
    gate_.resize(b * std::max<std::size_t>(c_.intermediate_size, qd_));
    up_.resize(b * c_.intermediate_size);
    for (Rotation* r : {&global_, &local_}) {
      r->cos.resize(b * c_.head_dim / 2);
      r->sin.resize(b * c_.head_dim / 2);
    }
    act_.reserve(b, widest_input(c_), splits_.any());
    seqs_.reserve(b);
  }

  const kernels::KernelTable& kernels() const override { return kt_; }
  std::string_view isa() const override { return kernels::to_string(kt_.isa); }

  void run(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted,
           std::span<float> logits, const Progress* progress) override {
    std::size_t next = 0;  // first entry of `wanted` not yet computed
    for (std::size_t i0 = 0; i0 < rows.size(); i0 += batch_) {
      const std::size_t m = std::min<std::size_t>(batch_, rows.size() - i0);
      chunk(rows.subspan(i0, m));
      std::size_t n = 0;
      while (next + n < wanted.size() && wanted[next + n] < i0 + m) ++n;
      if (n != 0) head(wanted.subspan(next, n), i0, logits.data() + next * c_.vocab_size);
      next += n;
      report(progress, i0 + m, rows.size());
    }
  }

  void run_hidden(std::span<const ForwardRow> rows, std::span<const std::uint32_t> wanted,
                  std::span<float> hidden) override {
    const std::size_t d = c_.hidden_size;
    std::size_t next = 0;  // first entry of `wanted` not yet written
    for (std::size_t i0 = 0; i0 < rows.size(); i0 += batch_) {
      const std::size_t m = std::min<std::size_t>(batch_, rows.size() - i0);
      chunk(rows.subspan(i0, m));
      for (; next < wanted.size() && wanted[next] < i0 + m; ++next) {
        norm(&hidden[next * d], &x_[(wanted[next] - i0) * d], w_.final_norm, w_.final_norm_b);
      }
    }
  }

  void head_rows(std::span<const float> hidden, std::span<float> logits) override {
    const std::size_t d = c_.hidden_size, n = hidden.size() / d;
    // Split inputs stage 2 result rows per token in scratch: a vocabulary-wide [2n][vocab] would
    // cost more memory than the logits themselves, so those go 16 tokens at a time.
    const bool two = splits_.head;
    const std::size_t step = two ? std::min<std::size_t>(16, batch_) : batch_;
    for (std::size_t i = 0; i < n; i += step) {
      const std::size_t rows = std::min(step, n - i);
      quantize(&hidden[i * d], rows, d, two);
      project(w_.lm_head, &logits[i * c_.vocab_size], c_.vocab_size);
    }
  }

 private:
  void chunk(std::span<const ForwardRow> rows) {
    const std::size_t m = rows.size(), d = c_.hidden_size, half = c_.rope_dim() / 2;
    const float embed_scale = std::sqrt(static_cast<float>(d));  // gemma, as the reference path
    const LayerWeights& first = w_.layers[0];
    // Embedding, then the first layer's input norm; every later layer's input norm runs with the
    // previous layer's last residual step (mlp_block).
    each_row_quantized(m, xb_.data(), d, splits_.layers[0].qkv, [&](std::size_t i) {
      w_.embed.dequantize_row(static_cast<std::uint32_t>(rows[i].token), {&x_[i * d], d});
      if (c_.gemma()) {
        for (std::size_t j = 0; j < d; ++j) x_[i * d + j] *= embed_scale;
      }
      const auto pos = static_cast<float>(rows[i].pos);
      for (std::size_t f = 0; f < half; ++f) {  // same float math as the reference path
        global_.cos[i * half + f] = std::cos(pos * inv_freq_[f]) * mscale_;
        global_.sin[i * half + f] = std::sin(pos * inv_freq_[f]) * mscale_;
        if (local_inv_freq_.empty()) continue;
        local_.cos[i * half + f] = std::cos(pos * local_inv_freq_[f]) * mscale_;
        local_.sin[i * half + f] = std::sin(pos * local_inv_freq_[f]) * mscale_;
      }
      norm(&xb_[i * d], &x_[i * d], first.attn_norm, first.attn_norm_b);
    });
    one_row_each_ = one_row_each(rows, seqs_);
    for (std::uint32_t l = 0; l < c_.n_layers; ++l) {
      attention_block(l, rows);
      mlp_block(l, m);
    }
  }

  // f(i) for every row of an m-row batch: on the pool for a batch of several rows (the steps
  // between matmuls are row-wise, so the bits are the same), on this thread below kParallelRows.
  template <class F>
  void each_row(std::size_t m, const F& f) {
    ops::for_row_ranges(pool_.get(), m, [&](std::size_t i0, std::size_t i1) {
      for (std::size_t i = i0; i < i1; ++i) f(i);
    });
  }

  // each_row, then the rows of x[m][k] quantized for the next matmul, in one parallel region: a
  // range is quantized as soon as f has written it, while it is in cache (the same bits).
  template <class F>
  void each_row_quantized(std::size_t m, const float* x, std::size_t k, bool split, const F& f) {
    act_.prepare(x, m, k, k, split);
    ops::for_row_ranges(pool_.get(), m, [&](std::size_t i0, std::size_t i1) {
      for (std::size_t i = i0; i < i1; ++i) f(i);
      act_.quantize_range(kt_, i0, i1);
    });
  }

  void quantize(const float* x, std::size_t m, std::size_t k, bool split) {
    act_.quantize(kt_, x, m, k, k, split, pool_.get());
  }

  void observe(MatrixInput input, std::uint32_t layer, const float* x, std::size_t rows,
               std::size_t cols) {
    if (observer_) {
      call_back("ActivationObserver::observe", [&] {
        observer_->observe(input, layer, {x, rows * cols}, rows);
      });
    }
  }

  void project(const Matrix& w, float* out, std::size_t ldy) {
    ops::matmul(kt_, *pool_, w, act_, out, ldy, scratch_);
  }

  // Bias, q/k norms and RoPE of row i's query heads that share KV head g and of that key, then
  // the key and value stored. Per KV head, so a decode batch's attention tasks do it themselves.
  void prepare_head(const LayerWeights& lw, std::uint32_t l, const ForwardRow& row, std::size_t i,
                    std::uint32_t g) {
    const std::size_t hd = c_.head_dim, group = c_.n_heads / c_.n_kv_heads;
    const std::size_t rot_dim = c_.rope_dim(), half = rot_dim / 2;  // phi3 rotates a part only
    float* q = &q_[i * qd_ + g * group * hd];
    float* k = &k_[i * kvd_ + g * hd];
    float* v = &v_[i * kvd_ + g * hd];
    if (!lw.bq.empty()) {  // elementwise: the bits of a whole-row add
      kt_.add(q, lw.bq.data() + g * group * hd, group * hd);
      kt_.add(k, lw.bk.data() + g * hd, hd);
      kt_.add(v, lw.bv.data() + g * hd, hd);
    }
    const Rotation& rot = c_.sliding(l) && !local_inv_freq_.empty() ? local_ : global_;
    const float* cs = &rot.cos[i * half];
    const float* sn = &rot.sin[i * half];
    for (std::size_t j = 0; j < group; ++j) {
      float* qh = q + j * hd;
      if (!lw.q_norm.empty()) kt_.rmsnorm(qh, qh, lw.q_norm.data(), hd, c_.rms_norm_eps);
      kt_.rope(qh, cs, sn, rot_dim);
    }
    if (!lw.k_norm.empty()) kt_.rmsnorm(k, k, lw.k_norm.data(), hd, c_.rms_norm_eps);
    kt_.rope(k, cs, sn, rot_dim);
    row.kv->store(l, g, row.pos, {k, hd}, {v, hd});
  }

  void attention_block(std::uint32_t l, std::span<const ForwardRow> rows) {
    const LayerWeights& lw = w_.layers[l];
    const std::size_t m = rows.size(), d = c_.hidden_size, hd = c_.head_dim;
    const std::uint32_t kv_heads = c_.n_kv_heads, group = c_.n_heads / kv_heads;
    observe(MatrixInput::Attention, l, xb_.data(), m, d);  // normed and quantized before the call
    const ops::Product qkv[] = {
        {&lw.wq, q_.data(), qd_}, {&lw.wk, k_.data(), kvd_}, {&lw.wv, v_.data(), kvd_}};
    ops::matmul(kt_, *pool_, qkv, act_, scratch_);
    // A row sees the earlier rows of its own sequence in this chunk (never another sequence's):
    // every key is stored before any row attends, unless each row is its own sequence's only one
    // (decode), when each attention task prepares its own head first (one parallel region less).
    if (!one_row_each_) {
      each_row(m, [&](std::size_t i) {
        for (std::uint32_t g = 0; g < kv_heads; ++g) prepare_head(lw, l, rows[i], i, g);
      });
    }
    const std::uint32_t window = c_.window(l);
    const float scale = c_.attention_scale();
    float* const att = gate_.data();
    // The output projection's input is quantized by the task that wrote it, where a KV head's
    // query heads span whole quantization blocks (every model but head_dim 80).
    const std::size_t head_blocks = group * hd / kernels::kActBlock;
    const bool quantize_in_tasks = group * hd % kernels::kActBlock == 0;
    if (quantize_in_tasks) act_.prepare(att, m, qd_, qd_, splits_.layers[l].wo);
    ops::attend_batch(
        kt_, *pool_, m * kv_heads,
        [&](std::size_t task) {
          const std::size_t i = task / kv_heads;
          const auto g = static_cast<std::uint32_t>(task % kv_heads);
          if (one_row_each_) prepare_head(lw, l, rows[i], i, g);
          const std::uint32_t pos = rows[i].pos;
          const std::uint32_t first = window && pos >= window ? pos - window + 1 : 0;
          const std::size_t q_off = i * qd_ + static_cast<std::size_t>(g) * group * hd;
          return ops::AttentionItem{
              .shape = {static_cast<std::uint32_t>(hd), group, first, pos, scale},
              .q = &q_[q_off],
              .kv = rows[i].kv->view(l, g),
              .out = &att[q_off]};
        },
        [&](std::size_t task) {
          if (!quantize_in_tasks) return;
          const std::size_t g = task % kv_heads;
          act_.quantize_blocks(kt_, task / kv_heads, g * head_blocks, (g + 1) * head_blocks);
        });
    observe(MatrixInput::AttentionOutput, l, att, m, qd_);
    if (!quantize_in_tasks) quantize(att, m, qd_, splits_.layers[l].wo);
    project(lw.wo, xb_.data(), d);
    // The residual step, then the MLP's input norm and quantization.
    each_row_quantized(m, xb_.data(), d, splits_.layers[l].gate_up, [&](std::size_t i) {
      if (!lw.bo.empty()) kt_.add(&xb_[i * d], lw.bo.data(), d);
      if (!lw.post_attn_norm.empty()) {
        kt_.rmsnorm(&xb_[i * d], &xb_[i * d], lw.post_attn_norm.data(), d, c_.rms_norm_eps);
      }
      kt_.add(&x_[i * d], &xb_[i * d], d);
      norm(&xb_[i * d], &x_[i * d], lw.ffn_norm, lw.ffn_norm_b);
    });
  }

  void mlp_block(std::uint32_t l, std::size_t m) {
    const LayerWeights& lw = w_.layers[l];
    const std::size_t d = c_.hidden_size, ff = c_.intermediate_size;
    const bool split_down = splits_.layers[l].down;
    observe(MatrixInput::Mlp, l, xb_.data(), m, d);  // normed and quantized by attention_block
    if (c_.gated_mlp()) {
      const ops::Product gate_up[] = {{&lw.w_gate, gate_.data(), ff}, {&lw.w_up, up_.data(), ff}};
      ops::matmul(kt_, *pool_, gate_up, act_, scratch_);
      // Row by row: a vector body and its scalar tail may round differently, so every row must be
      // split the same way whatever the batch size (results may not depend on chunking).
      each_row_quantized(m, gate_.data(), ff, split_down, [&](std::size_t i) {
        if (c_.gemma()) {  // GeGLU
          kt_.gelu_mul(&gate_[i * ff], &up_[i * ff], ff);
        } else {
          kt_.silu_mul(&gate_[i * ff], &up_[i * ff], ff);
        }
      });
    } else {  // starcoder2: c_fc (+ bias) -> gelu (tanh)
      project(lw.w_up, gate_.data(), ff);
      each_row_quantized(m, gate_.data(), ff, split_down, [&](std::size_t i) {
        if (!lw.b_up.empty()) kt_.add(&gate_[i * ff], lw.b_up.data(), ff);
        kt_.gelu_mul(&gate_[i * ff], nullptr, ff);
      });
    }
    observe(MatrixInput::MlpHidden, l, gate_.data(), m, ff);
    project(lw.w_down, xb_.data(), d);
    const auto residual = [&](std::size_t i) {
      if (!lw.b_down.empty()) kt_.add(&xb_[i * d], lw.b_down.data(), d);
      if (!lw.post_ffn_norm.empty()) {
        kt_.rmsnorm(&xb_[i * d], &xb_[i * d], lw.post_ffn_norm.data(), d, c_.rms_norm_eps);
      }
      kt_.add(&x_[i * d], &xb_[i * d], d);
    };
    if (l + 1 == c_.n_layers) return each_row(m, residual);  // the head norms the wanted rows
    // The residual step, then the next layer's input norm and quantization.
    const LayerWeights& next = w_.layers[l + 1];
    each_row_quantized(m, xb_.data(), d, splits_.layers[l + 1].qkv, [&](std::size_t i) {
      residual(i);
      norm(&xb_[i * d], &x_[i * d], next.attn_norm, next.attn_norm_b);
    });
  }

  // One row of RMSNorm, or of starcoder2's LayerNorm with bias (the ISA's kernels).
  void norm(float* out, const float* x, std::span<const float> w, std::span<const float> b) {
    const std::size_t d = c_.hidden_size;
    if (c_.layer_norm()) {
      kt_.layernorm(out, x, w.data(), b.data(), d, c_.rms_norm_eps);
    } else {
      kt_.rmsnorm(out, x, w.data(), d, c_.rms_norm_eps);
    }
  }

  // Logits of chunk rows wanted[j] - offset into out ([wanted.size()][vocab]).
  void head(std::span<const std::uint32_t> wanted, std::size_t offset, float* out) {
    const std::size_t d = c_.hidden_size, n = wanted.size();
    each_row(n, [&](std::size_t j) {
      norm(&xb_[j * d], &x_[(wanted[j] - offset) * d], w_.final_norm, w_.final_norm_b);
    });
    observe(MatrixInput::Head, 0, xb_.data(), n, d);
    head_rows({xb_.data(), n * d}, {out, n * c_.vocab_size});
  }

  const ModelConfig& c_;
  const ModelWeights& w_;
  const kernels::KernelTable& kt_;
  std::shared_ptr<ThreadPool> pool_;
  std::uint32_t batch_;
  std::vector<float> inv_freq_, local_inv_freq_;  // local: empty unless sliding layers differ
  float mscale_;                                  // cos/sin scale (longrope)
  // cos/sin of each chunk row's position, [batch][head_dim / 2].
  struct Rotation {
    std::vector<float> cos, sin;
  } global_, local_;
  std::size_t qd_, kvd_;
  InputSplits splits_;
  // Activations of one chunk, row-major [batch][dim].
  std::vector<float> x_, xb_, q_, k_, v_, gate_, up_, scratch_;
  ops::QuantizedActivations act_;
  std::vector<const SequenceKv*> seqs_;  // one_row_each's scratch
  bool one_row_each_ = false;            // of the chunk being run
  std::shared_ptr<ActivationObserver> observer_;
};

}  // namespace

bool InputSplits::any() const {
  return head || std::any_of(layers.begin(), layers.end(),
                             [](const Layer& l) { return l.qkv || l.wo || l.gate_up || l.down; });
}

InputSplits resolve_splits(const Model& model, ActivationPrecision activations) {
  const ModelWeights& w = model_weights(model);
  InputSplits s;
  for (const LayerWeights& lw : w.layers) {
    s.layers.push_back({.qkv = any_two({&lw.wq, &lw.wk, &lw.wv}, activations),
                        .wo = any_two({&lw.wo}, activations),
                        .gate_up = any_two({&lw.w_gate, &lw.w_up}, activations),
                        .down = any_two({&lw.w_down}, activations)});
  }
  s.head = any_two({&w.lm_head}, activations);
  return s;
}

std::uint32_t default_batch(const Model& model, const InputSplits& splits) {
  // Prompt speed barely changes between 64 and 256 tokens per chunk on the shapes measured
  // (bench/RESULTS.md), while the buffers of 256 tokens would add ~9% to a 135M q4 model.
  const std::size_t per_token = buffer_bytes_per_token(model.config(), splits.any());
  const std::uint64_t budget = model_file(model).file_size() / 25;  // 4% of the weights
  std::uint32_t batch = 256;
  while (batch > 64 && batch * per_token > budget) batch /= 2;
  return batch;
}

std::unique_ptr<FastPath> make_fast_forward(const Model& model, const kernels::KernelTable& kernels,
                                            FastOptions options) {
  return std::make_unique<FastForward>(model, kernels, std::move(options));
}

}  // namespace qlm::detail
