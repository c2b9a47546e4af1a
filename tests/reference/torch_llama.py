#!/usr/bin/python3
"""Independent PyTorch reference of the Llama-family decoder (llama, mistral, qwen2, qwen3,
starcoder2, phi3; gemma3_text in torch_gemma3.py).

Written from the Hugging Face modelling code's definitions, not from qlm: it reads the original
safetensors directly and computes in float64, so qlm's float32 logits are compared against the
exact math. Qwen3 (transformers' modeling_qwen3.py) is Llama plus an RMSNorm over each head's
query and key vectors (weights q_norm / k_norm of size head_dim, the model's rms_norm_eps) applied
after the projections and before RoPE, an explicit head_dim that need not be hidden / heads, and
q/k/v biases only when attention_bias is true. StarCoder2 (modeling_starcoder2.py) uses
nn.LayerNorm (weight and bias, eps norm_epsilon) for input_layernorm, post_attention_layernorm and
model.norm; biases on q/k/v/o_proj and on its non-gated MLP, c_proj(gelu_tanh(c_fc(x))), when
use_bias (default true); Mistral's sliding-window mask; embeddings tied by default. Phi-3
(modeling_phi3.py) is Llama with q/k/v fused in qkv_proj and gate/up in gate_up_proj, RoPE on
the first head_dim * partial_rotary_factor dims of each head only, and longrope scaling: inverse
frequencies divided by per-frequency short or long factors, cos and sin times an attention
factor. Two commands:

  torch_llama.py logits <model_dir> <comma-separated ids> <out.f32>
      writes float32 logits [n_tokens][vocab] for the sequence evaluated causally.
  torch_llama.py synth <out_dir> <json overrides> <seed> <tokenizer_dir>
      writes a small random checkpoint (config.json + model.safetensors) with the tokenizer files
      of <tokenizer_dir> copied in.

For tests that guard against vacuous agreement, TORCH_LLAMA_ABLATE (comma-separated) computes a
deliberately wrong starcoder2: "no_bias" drops every bias (linear and LayerNorm), "rms_norm"
uses RMSNorm (no mean, no bias) in place of LayerNorm.
"""
import json
import math
import os
import shutil
import struct
import sys

import torch

import torch_gemma3

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        buf = bytearray(data[base + a:base + b])
        t = torch.frombuffer(buf, dtype=DTYPES[e["dtype"]]) if b > a else torch.zeros(0)
        out[name] = t.reshape(e["shape"]).to(torch.float64)
    return out


def load_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for fn in files:
            tensors.update(read_safetensors(os.path.join(model_dir, fn)))
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def inv_freq(cfg, head_dim, n):
    theta = cfg.get("rope_theta", 10000.0)
    f = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) in ("longrope", "su"):
        # Phi-3 (transformers' _compute_longrope_parameters): long factors beyond the original
        # context. HF decides per forward call from the sequence length; qlm once per session from
        # its context, so the tests evaluate with a context equal to the sequence length.
        original = cfg.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        ext = rs["long_factor"] if n > original else rs["short_factor"]
        return f / torch.tensor(ext, dtype=torch.float64)
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
        old = rs.get("original_max_position_embeddings", 8192)
        wavelen = 2 * math.pi / f
        scaled = torch.where(wavelen > old / lo, f / factor, f)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        f = torch.where(medium, smoothed, scaled)
    return f


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased, as nn.LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def longrope_mscale(cfg):
    rs = cfg.get("rope_scaling")
    if not rs or rs.get("rope_type", rs.get("type")) not in ("longrope", "su"):
        return 1.0
    if rs.get("attention_factor") is not None:
        return rs["attention_factor"]
    if "original_max_position_embeddings" in cfg:
        original = cfg["original_max_position_embeddings"]
        factor = cfg["max_position_embeddings"] / original
    else:
        original, factor = cfg["max_position_embeddings"], rs.get("factor", 1.0)
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))


def unfuse_phi3(cfg, w, hd):
    """Phi-3 (modeling_phi3.py) fuses q/k/v in qkv_proj and gate/up (in that order) in
    gate_up_proj: split them into Llama's names."""
    q = cfg["num_attention_heads"] * hd
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * hd
    out = dict(w)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        qkv = out.pop(p + "self_attn.qkv_proj.weight")
        out[p + "self_attn.q_proj.weight"] = qkv[:q]
        out[p + "self_attn.k_proj.weight"] = qkv[q:q + kv]
        out[p + "self_attn.v_proj.weight"] = qkv[q + kv:]
        gate, up = out.pop(p + "mlp.gate_up_proj.weight").chunk(2, dim=0)
        out[p + "mlp.gate_proj.weight"] = gate
        out[p + "mlp.up_proj.weight"] = up
    return out


def forward(cfg, w, ids):
    if cfg["model_type"] == "gemma3_text":
        return torch_gemma3.forward(cfg, w, ids)
    sc2 = cfg["model_type"] == "starcoder2"
    ablate = set(filter(None, os.environ.get("TORCH_LLAMA_ABLATE", "").split(",")))
    if "no_bias" in ablate:
        w = {k: v for k, v in w.items() if not k.endswith(".bias")}
    d = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or d // nh
    eps = cfg.get("norm_epsilon", 1e-5) if sc2 else cfg.get("rms_norm_eps", 1e-6)
    n = len(ids)
    window = cfg.get("sliding_window") if cfg["model_type"] in ("mistral", "starcoder2", "phi3") else None
    rot = hd  # rotated dims per head (phi3: head_dim * partial_rotary_factor, the rest pass)
    if cfg["model_type"] == "phi3":
        w = unfuse_phi3(cfg, w, hd)
        rot = int(hd * cfg.get("partial_rotary_factor", 1.0))

    def norm(x, name):
        if sc2 and "rms_norm" not in ablate:
            return layer_norm(x, w[name + ".weight"], w.get(name + ".bias", 0.0), eps)
        return rms_norm(x, w[name + ".weight"], eps)

    pos = torch.arange(n, dtype=torch.float64)
    ang = pos[:, None] * inv_freq(cfg, rot, n)[None, :]
    cos = torch.cat((ang, ang), -1).cos() * longrope_mscale(cfg)
    sin = torch.cat((ang, ang), -1).sin() * longrope_mscale(cfg)
    i = torch.arange(n)
    mask = i[None, :] <= i[:, None]
    if window:
        mask &= i[None, :] > i[:, None] - window
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = norm(x, p + "input_layernorm")
        q = h @ w[p + "self_attn.q_proj.weight"].T
        k = h @ w[p + "self_attn.k_proj.weight"].T
        v = h @ w[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in w:
            q = q + w[p + "self_attn.q_proj.bias"]
            k = k + w[p + "self_attn.k_proj.bias"]
            v = v + w[p + "self_attn.v_proj.bias"]
        q = q.view(n, nh, hd)
        k = k.view(n, nkv, hd)
        if cfg["model_type"] == "qwen3":  # per-head RMSNorm over head_dim, before RoPE
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q.transpose(0, 1)
        k = k.transpose(0, 1)
        v = v.view(n, nkv, hd).transpose(0, 1)
        q = torch.cat((q[..., :rot] * cos + rotate_half(q[..., :rot]) * sin, q[..., rot:]), -1)
        k = torch.cat((k[..., :rot] * cos + rotate_half(k[..., :rot]) * sin, k[..., rot:]), -1)
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        s = (q @ k.transpose(1, 2)) / math.sqrt(hd)
        s = s.masked_fill(~mask, float("-inf"))
        o = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(n, nh * hd)
        a = o @ w[p + "self_attn.o_proj.weight"].T
        if p + "self_attn.o_proj.bias" in w:
            a = a + w[p + "self_attn.o_proj.bias"]
        x = x + a
        h = norm(x, p + "post_attention_layernorm")
        if sc2:
            u = h @ w[p + "mlp.c_fc.weight"].T
            if p + "mlp.c_fc.bias" in w:
                u = u + w[p + "mlp.c_fc.bias"]
            m = gelu_tanh(u) @ w[p + "mlp.c_proj.weight"].T
            if p + "mlp.c_proj.bias" in w:
                m = m + w[p + "mlp.c_proj.bias"]
            x = x + m
        else:
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    x = norm(x, "model.norm")
    head = w.get("lm_head.weight") if not cfg.get("tie_word_embeddings", sc2) else None
    if head is None:
        head = w["model.embed_tokens.weight"]
    return x @ head.T


def cmd_logits(model_dir, ids_text, out):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    ids = [int(t) for t in ids_text.split(",")]
    logits = forward(cfg, load_checkpoint(model_dir), ids)
    with open(out, "wb") as f:
        f.write(logits.to(torch.float32).contiguous().numpy().tobytes())


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        b = t.to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cmd_synth(out_dir, overrides, seed, tokenizer_dir):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
           "vocab_size": 512, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
    over = json.loads(overrides)
    if over.get("model_type") == "starcoder2":  # Starcoder2Config's keys instead of Llama's
        for k in ("rms_norm_eps", "hidden_act", "tie_word_embeddings"):
            del cfg[k]
        cfg.update({"norm_epsilon": 1e-5, "hidden_act": "gelu_pytorch_tanh", "use_bias": True,
                    "norm_type": "layer_norm", "mlp_type": "default"})
    if over.get("model_type") == "gemma3_text":
        torch_gemma3.synth_config(cfg)
    cfg.update(over)
    sc2 = cfg["model_type"] == "starcoder2"
    bias = sc2 and cfg.get("use_bias", True)
    tied = cfg.get("tie_word_embeddings", sc2)
    g = torch.Generator().manual_seed(int(seed))

    def rnd(*shape, scale=0.1):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    if cfg["model_type"] == "gemma3_text":
        t = torch_gemma3.synth_tensors(cfg, rnd)
    else:
        t = llama_tensors(cfg, rnd, sc2, bias, tied)
    if cfg["model_type"] == "phi3":
        t = fuse_phi3(cfg, t)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    for fn in ("tokenizer.model", "tokenizer_config.json", "tokenizer.json"):
        src = os.path.join(tokenizer_dir, fn)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out_dir, fn))


def fuse_phi3(cfg, t):
    out = {}
    for name, v in t.items():
        if name.endswith(("self_attn.k_proj.weight", "self_attn.v_proj.weight", "mlp.up_proj.weight")):
            continue
        p = name[:name.rfind("self_attn.")] if "self_attn." in name else name[:name.rfind("mlp.")]
        if name.endswith("self_attn.q_proj.weight"):
            parts = [v, t[p + "self_attn.k_proj.weight"], t[p + "self_attn.v_proj.weight"]]
            out[p + "self_attn.qkv_proj.weight"] = torch.cat(parts, 0)
        elif name.endswith("mlp.gate_proj.weight"):
            out[p + "mlp.gate_up_proj.weight"] = torch.cat([v, t[p + "mlp.up_proj.weight"]], 0)
        else:
            out[name] = v
    return out


def llama_tensors(cfg, rnd, sc2, bias, tied):
    d, ff = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    t = {"model.embed_tokens.weight": rnd(cfg["vocab_size"], d, scale=1.0)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = 1.0 + rnd(d)
        if sc2:
            t[p + "input_layernorm.bias"] = rnd(d)
        t[p + "self_attn.q_proj.weight"] = rnd(nh * hd, d, scale=0.3)
        t[p + "self_attn.k_proj.weight"] = rnd(nkv * hd, d, scale=0.3)
        t[p + "self_attn.v_proj.weight"] = rnd(nkv * hd, d)
        if cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False) or bias:
            t[p + "self_attn.q_proj.bias"] = rnd(nh * hd, scale=0.5)
            t[p + "self_attn.k_proj.bias"] = rnd(nkv * hd, scale=0.5)
            t[p + "self_attn.v_proj.bias"] = rnd(nkv * hd, scale=0.5)
        if cfg["model_type"] == "qwen3":
            t[p + "self_attn.q_norm.weight"] = 1.0 + rnd(hd, scale=0.3)
            t[p + "self_attn.k_norm.weight"] = 1.0 + rnd(hd, scale=0.3)
        t[p + "self_attn.o_proj.weight"] = rnd(d, nh * hd)
        if bias:
            t[p + "self_attn.o_proj.bias"] = rnd(d, scale=0.5)
        t[p + "post_attention_layernorm.weight"] = 1.0 + rnd(d)
        if sc2:
            t[p + "post_attention_layernorm.bias"] = rnd(d)
            t[p + "mlp.c_fc.weight"] = rnd(ff, d, scale=0.3)
            t[p + "mlp.c_proj.weight"] = rnd(d, ff)
            if bias:
                t[p + "mlp.c_fc.bias"] = rnd(ff, scale=0.5)
                t[p + "mlp.c_proj.bias"] = rnd(d, scale=0.5)
            continue
        t[p + "mlp.gate_proj.weight"] = rnd(ff, d)
        t[p + "mlp.up_proj.weight"] = rnd(ff, d)
        t[p + "mlp.down_proj.weight"] = rnd(d, ff)
    t["model.norm.weight"] = 1.0 + rnd(d)
    if sc2:
        t["model.norm.bias"] = rnd(d)
    if not tied:
        t["lm_head.weight"] = rnd(cfg["vocab_size"], d)
    return t


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    if len(sys.argv) == 5 and sys.argv[1] == "logits":
        cmd_logits(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "synth":
        cmd_synth(*sys.argv[2:])
    else:
        sys.exit(__doc__)
