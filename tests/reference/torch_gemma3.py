"""Independent float64 PyTorch reference of Gemma 3's text decoder (model_type "gemma3_text").

Written from transformers' modeling_gemma3.py and Gemma3TextConfig, not from qlm:
- token embeddings times sqrt(hidden_size) (Gemma3TextScaledWordEmbedding);
- Gemma3RMSNorm multiplies by (1 + weight), weights stored as offsets from 1;
- each layer: x += post_attention_layernorm(attn(input_layernorm(x))), then
  x += post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)));
- attention: q/k RMSNorm (1 + w) over head_dim before RoPE, scores times
  query_pre_attn_scalar ** -0.5, GQA;
- sliding-window layers (layer_types, or every layer but each sliding_window_pattern-th) see keys
  in (pos - sliding_window, pos] and rotate with base rope_local_base_freq and no scaling; global
  layers use rope_theta and rope_scaling (default or linear);
- MLP down(gelu_tanh(gate(x)) * up(x)); tied LM head by default.
torch_llama.py dispatches here for its `logits` and `synth` commands.
"""
import math

import torch


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def gemma_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def sliding_layers(cfg):
    n = cfg["num_hidden_layers"]
    if cfg.get("layer_types"):
        return [t == "sliding_attention" for t in cfg["layer_types"]]
    pattern = cfg.get("sliding_window_pattern", 6)
    return [bool((i + 1) % pattern) for i in range(n)]


def rotation(theta, head_dim, n, factor=1.0):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)) / factor
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), -1)
    return emb.cos(), emb.sin()


def forward(cfg, w, ids):
    d = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", 256)
    eps = cfg.get("rms_norm_eps", 1e-6)
    n = len(ids)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    assert kind in ("default", "linear"), kind
    global_rot = rotation(cfg.get("rope_theta", 1e6), hd, n, rs["factor"] if kind == "linear" else 1.0)
    local_rot = rotation(cfg.get("rope_local_base_freq", 10000.0), hd, n)
    scaling = cfg.get("query_pre_attn_scalar", 256) ** -0.5
    window = cfg.get("sliding_window", 4096)
    i = torch.arange(n)
    causal = i[None, :] <= i[:, None]
    local_mask = causal & (i[None, :] > i[:, None] - window)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)] * math.sqrt(d)
    for l, sliding in enumerate(sliding_layers(cfg)):
        p = f"model.layers.{l}."
        cos, sin = local_rot if sliding else global_rot
        h = gemma_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(n, nh, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(n, nkv, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(n, nkv, hd).transpose(0, 1)
        q = gemma_norm(q, w[p + "self_attn.q_norm.weight"], eps).transpose(0, 1)
        k = gemma_norm(k, w[p + "self_attn.k_norm.weight"], eps).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        s = (q @ k.transpose(1, 2)) * scaling
        s = s.masked_fill(~(local_mask if sliding else causal), float("-inf"))
        o = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(n, nh * hd)
        a = o @ w[p + "self_attn.o_proj.weight"].T
        x = x + gemma_norm(a, w[p + "post_attention_layernorm.weight"], eps)
        h = gemma_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps)
        g = gelu_tanh(h @ w[p + "mlp.gate_proj.weight"].T)
        m = (g * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        x = x + gemma_norm(m, w[p + "post_feedforward_layernorm.weight"], eps)
    x = gemma_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight") if not cfg.get("tie_word_embeddings", True) else None
    return x @ (w["model.embed_tokens.weight"] if head is None else head).T


def synth_config(cfg):
    """Gemma3TextConfig's keys in place of the Llama defaults of torch_llama.py's synth."""
    for k in ("hidden_act", "rope_theta"):
        cfg.pop(k, None)
    cfg.update({"architectures": ["Gemma3ForCausalLM"], "hidden_activation": "gelu_pytorch_tanh",
                "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                "query_pre_attn_scalar": 24, "sliding_window": 8, "sliding_window_pattern": 2,
                "tie_word_embeddings": True, "attention_bias": False,
                "attn_logit_softcapping": None, "final_logit_softcapping": None})


def synth_tensors(cfg, rnd):
    d, ff = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    t = {"model.embed_tokens.weight": rnd(cfg["vocab_size"], d, scale=0.2)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        # Gemma norm weights are offsets from a scale of 1: small values around 0.
        for name in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            t[p + name + ".weight"] = rnd(d, scale=0.3)
        t[p + "self_attn.q_proj.weight"] = rnd(nh * hd, d, scale=0.3)
        t[p + "self_attn.k_proj.weight"] = rnd(nkv * hd, d, scale=0.3)
        t[p + "self_attn.v_proj.weight"] = rnd(nkv * hd, d)
        t[p + "self_attn.q_norm.weight"] = rnd(hd, scale=0.3)
        t[p + "self_attn.k_norm.weight"] = rnd(hd, scale=0.3)
        t[p + "self_attn.o_proj.weight"] = rnd(d, nh * hd)
        t[p + "mlp.gate_proj.weight"] = rnd(ff, d)
        t[p + "mlp.up_proj.weight"] = rnd(ff, d)
        t[p + "mlp.down_proj.weight"] = rnd(d, ff)
    t["model.norm.weight"] = rnd(d, scale=0.3)
    if not cfg.get("tie_word_embeddings", True):
        t["lm_head.weight"] = rnd(cfg["vocab_size"], d)
    return t
