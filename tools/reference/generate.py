#!/usr/bin/env python3
"""Reference fixtures for Memo's CPU engine.

Defines two small decoder-only models in plain PyTorch, written to match the Hugging Face
definitions (LlamaForCausalLM and GPT2LMHeadModel), computes everything in float64 and writes,
per fixture directory: config.json (HF format), model.safetensors (float32 initial weights under HF
names and layouts), batch.json (flat token stream), grads.safetensors (float32 step-0 gradients)
and expected.json (step-0 loss and a 10-step AdamW training trace).

Regenerate with:
    /usr/bin/python3 tools/reference/generate.py --out tests/Memo.Tests/Fixtures
Check the model definitions (finite differences, gradcheck, independent re-implementations):
    /usr/bin/python3 tools/reference/generate.py --selfcheck
"""

import argparse
import json
import math
import os
import struct
import sys

import torch

DT = torch.float64

# ----------------------------------------------------------------------------------------------
# Fixture definitions
# ----------------------------------------------------------------------------------------------

FIXTURES = {
    "llama-tiny": dict(
        model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=176, vocab_size=256, rope_theta=10000.0,
        rms_norm_eps=1e-5, max_position_embeddings=64, tie_word_embeddings=False,
        batch=2, seq=16, seed=1001),
    "llama-tied": dict(
        model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, intermediate_size=176, vocab_size=256, rope_theta=10000.0,
        rms_norm_eps=1e-5, max_position_embeddings=64, tie_word_embeddings=True,
        batch=1, seq=24, seed=1002),
    "gpt2-tiny": dict(
        model_type="gpt2", n_embd=64, n_layer=2, n_head=4, n_inner=256, vocab_size=256,
        n_positions=64, layer_norm_epsilon=1e-5,
        batch=2, seq=16, seed=1003),
}

LLAMA_CONFIG_KEYS = ["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "intermediate_size", "vocab_size", "rope_theta",
                     "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings"]
GPT2_CONFIG_KEYS = ["model_type", "n_embd", "n_layer", "n_head", "n_inner", "vocab_size",
                    "n_positions", "layer_norm_epsilon"]

TRAIN = dict(lr=1e-2, warmup_steps=3, total_steps=10, min_lr_ratio=0.1, beta1=0.9, beta2=0.95,
             eps=1e-8, weight_decay=0.1, grad_clip=1.0)

# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------


def param_shapes(cfg):
    """Ordered list of (HF name, shape, kind) with kind in {"matrix", "norm", "bias"}."""
    out = []
    if cfg["model_type"] == "llama":
        C, L = cfg["hidden_size"], cfg["num_hidden_layers"]
        Hq, Hkv, F, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"]
        D = C // Hq
        out.append(("model.embed_tokens.weight", [V, C], "matrix"))
        for i in range(L):
            p = f"model.layers.{i}."
            out.append((p + "input_layernorm.weight", [C], "norm"))
            out.append((p + "self_attn.q_proj.weight", [Hq * D, C], "matrix"))
            out.append((p + "self_attn.k_proj.weight", [Hkv * D, C], "matrix"))
            out.append((p + "self_attn.v_proj.weight", [Hkv * D, C], "matrix"))
            out.append((p + "self_attn.o_proj.weight", [C, Hq * D], "matrix"))
            out.append((p + "post_attention_layernorm.weight", [C], "norm"))
            out.append((p + "mlp.gate_proj.weight", [F, C], "matrix"))
            out.append((p + "mlp.up_proj.weight", [F, C], "matrix"))
            out.append((p + "mlp.down_proj.weight", [C, F], "matrix"))
        out.append(("model.norm.weight", [C], "norm"))
        if not cfg["tie_word_embeddings"]:
            out.append(("lm_head.weight", [V, C], "matrix"))
    elif cfg["model_type"] == "gpt2":
        C, L, F, V, P = cfg["n_embd"], cfg["n_layer"], cfg["n_inner"], cfg["vocab_size"], cfg["n_positions"]
        out.append(("transformer.wte.weight", [V, C], "matrix"))
        out.append(("transformer.wpe.weight", [P, C], "matrix"))
        for i in range(L):
            p = f"transformer.h.{i}."
            out.append((p + "ln_1.weight", [C], "norm"))
            out.append((p + "ln_1.bias", [C], "bias"))
            out.append((p + "attn.c_attn.weight", [C, 3 * C], "matrix"))
            out.append((p + "attn.c_attn.bias", [3 * C], "bias"))
            out.append((p + "attn.c_proj.weight", [C, C], "matrix"))
            out.append((p + "attn.c_proj.bias", [C], "bias"))
            out.append((p + "ln_2.weight", [C], "norm"))
            out.append((p + "ln_2.bias", [C], "bias"))
            out.append((p + "mlp.c_fc.weight", [C, F], "matrix"))
            out.append((p + "mlp.c_fc.bias", [F], "bias"))
            out.append((p + "mlp.c_proj.weight", [F, C], "matrix"))
            out.append((p + "mlp.c_proj.bias", [C], "bias"))
        out.append(("transformer.ln_f.weight", [C], "norm"))
        out.append(("transformer.ln_f.bias", [C], "bias"))
    else:
        raise ValueError(cfg["model_type"])
    return out


def init_params(cfg, gen):
    """Seeded float64 init, rounded to float32, returned as float64 leaf tensors (ordered dict)."""
    params = {}
    for name, shape, kind in param_shapes(cfg):
        r = torch.randn(shape, generator=gen, dtype=DT)
        if kind == "matrix":
            v = 0.02 * r
        elif kind == "norm":
            v = 1.0 + 0.1 * r
        else:
            v = 0.02 * r
        params[name] = v.to(torch.float32).to(DT).requires_grad_(True)
    return params


# ----------------------------------------------------------------------------------------------
# Llama (HF LlamaForCausalLM)
# ----------------------------------------------------------------------------------------------


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(T, D, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=dtype) / D))  # [D/2]
    pos = torch.arange(T, dtype=dtype)
    freqs = torch.outer(pos, inv_freq)  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
    return emb.cos(), emb.sin()


def rope_inv_freq_scaled(cfg, T, D):
    """Inverse frequencies and cos/sin factor for cfg["rope_scaling"], following the definitions of
    transformers' modeling_rope_utils.py (linear, dynamic, llama3, yarn), in float64."""
    r = cfg["rope_scaling"]
    kind = r.get("rope_type", r.get("type"))
    theta, factor = cfg["rope_theta"], r["factor"]
    i = torch.arange(0, D, 2, dtype=DT)
    base = 1.0 / (theta ** (i / D))
    if kind == "linear":
        return base / factor, 1.0
    if kind == "dynamic":
        L = r.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        s = max(T, L)
        th = theta * ((factor * s / L) - (factor - 1)) ** (D / (D - 2))
        return 1.0 / (th ** (i / D)), 1.0
    if kind == "llama3":
        L = r["original_max_position_embeddings"]
        lo, hi = r["low_freq_factor"], r["high_freq_factor"]
        wave = 2 * math.pi / base
        out = torch.where(wave > L / lo, base / factor, base)
        smooth = (L / wave - lo) / (hi - lo)
        mid = (wave >= L / hi) & (wave <= L / lo)
        return torch.where(mid, (1 - smooth) * base / factor + smooth * base, out), 1.0
    if kind == "yarn":
        L = r.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        attn = r.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
        fast, slow = r.get("beta_fast") or 32, r.get("beta_slow") or 1

        def corr(rot):
            return D * math.log(L / (rot * 2 * math.pi)) / (2 * math.log(theta))
        low, high = max(math.floor(corr(fast)), 0), min(math.ceil(corr(slow)), D - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(D // 2, dtype=DT) - low) / (high - low)).clamp(0, 1)
        extra = 1 - ramp
        return (base / factor) * (1 - extra) + base * extra, attn
    raise ValueError(kind)


def rope_cos_sin_scaled(cfg, T, D, dtype):
    inv_freq, attn = rope_inv_freq_scaled(cfg, T, D)
    freqs = torch.outer(torch.arange(T, dtype=dtype), inv_freq.to(dtype))
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * attn, emb.sin() * attn


def causal_attention(q, k, v):
    """q: [B, H, T, D], k/v: [B, H, T, D]. Causal softmax(q k^T / sqrt(D)) v."""
    T, D = q.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    att = att.masked_fill(mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    return att @ v


def llama_forward(cfg, P, idx):
    B, T = idx.shape
    C, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    Hq, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // Hq
    eps = cfg["rms_norm_eps"]
    x = P["model.embed_tokens.weight"][idx]  # [B, T, C]
    if cfg.get("rope_scaling"):
        cos, sin = rope_cos_sin_scaled(cfg, T, D, x.dtype)
    else:
        cos, sin = rope_cos_sin(T, D, cfg["rope_theta"], x.dtype)
    for i in range(L):
        p = f"model.layers.{i}."
        h = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(B, T, Hq, D).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(B, T, Hkv, D).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(B, T, Hkv, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = Hq // Hkv  # query head h uses kv head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, Hq * D)
        x = x + y @ P[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = h @ P[p + "mlp.gate_proj.weight"].T
        u = h @ P[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return x @ head.T  # [B, T, V]


# ----------------------------------------------------------------------------------------------
# GPT-2 (HF GPT2LMHeadModel)
# ----------------------------------------------------------------------------------------------


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) * torch.rsqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_forward(cfg, P, idx):
    B, T = idx.shape
    C, L, H = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
    D = C // H
    eps = cfg["layer_norm_epsilon"]
    pos = torch.arange(T)
    x = P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][pos]
    for i in range(L):
        p = f"transformer.h.{i}."
        h = layer_norm(x, P[p + "ln_1.weight"], P[p + "ln_1.bias"], eps)
        qkv = h @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]  # Conv1D: [in, out]
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        h = layer_norm(x, P[p + "ln_2.weight"], P[p + "ln_2.bias"], eps)
        h = gelu_tanh(h @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"])
        x = x + h @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
    x = layer_norm(x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    return x @ P["transformer.wte.weight"].T


def forward(cfg, P, idx):
    return llama_forward(cfg, P, idx) if cfg["model_type"] == "llama" else gpt2_forward(cfg, P, idx)


def loss_fn(cfg, P, idx, tgt):
    logits = forward(cfg, P, idx)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


# ----------------------------------------------------------------------------------------------
# Data, schedule, training
# ----------------------------------------------------------------------------------------------


def batch_at(tokens, step, B, T):
    s = step * B * T
    chunk = tokens[s: s + B * T + 1]
    return chunk[:-1].view(B, T), chunk[1:].view(B, T)


def lr_at(step, tr):
    lr, warm, total = tr["lr"], tr["warmup_steps"], tr["total_steps"]
    if step < warm:
        return lr * (step + 1) / warm
    min_lr = lr * tr["min_lr_ratio"]
    progress = (step - warm) / max(1, total - warm)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def train_trace(cfg, P0, tokens, B, T, tr):
    P = {k: v.detach().clone().requires_grad_(True) for k, v in P0.items()}
    params = list(P.values())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tr["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=tr["eps"])
    losses, norms, lrs = [], [], []
    for s in range(tr["total_steps"]):
        idx, tgt = batch_at(tokens, s, B, T)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(cfg, P, idx, tgt)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, tr["grad_clip"])
        lr = lr_at(s, tr)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(loss.item())
        norms.append(float(norm))
        lrs.append(lr)
    return losses, norms, lrs


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------


def write_safetensors(path, tensors):
    """tensors: ordered dict name -> tensor; written as little-endian F32 in the given order."""
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous().numpy().astype("<f4", copy=False)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + b: base + end]), dtype=torch.float32)
        out[name] = t.view(e["shape"]) if e["shape"] else t
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def generate_fixture(name, spec, outdir):
    cfg = dict(spec)
    B, T, seed = cfg.pop("batch"), cfg.pop("seq"), cfg.pop("seed")
    gen = torch.Generator().manual_seed(seed)
    P = init_params(cfg, gen)
    V = cfg["vocab_size"]
    tokens = torch.randint(0, V, (10 * B * T + 1,), generator=gen, dtype=torch.int64)

    idx, tgt = batch_at(tokens, 0, B, T)
    logits = forward(cfg, P, idx)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
    grads = torch.autograd.grad(loss, list(P.values()))
    losses, norms, lrs = train_trace(cfg, P, tokens, B, T, TRAIN)
    assert abs(losses[0] - loss.item()) < 1e-12

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    keys = LLAMA_CONFIG_KEYS if cfg["model_type"] == "llama" else GPT2_CONFIG_KEYS
    write_json(os.path.join(d, "config.json"), {k: cfg[k] for k in keys})
    write_safetensors(os.path.join(d, "model.safetensors"), P)
    write_safetensors(os.path.join(d, "grads.safetensors"), dict(zip(P.keys(), grads)))
    with open(os.path.join(d, "batch.json"), "w") as f:
        f.write('{"batch": %d, "seq": %d, "tokens": [%s]}\n' % (B, T, ", ".join(str(int(t)) for t in tokens)))
    train = dict(TRAIN)
    train.update(losses=losses, grad_norms=norms, lrs=lrs)
    write_json(os.path.join(d, "expected.json"), {
        "loss": loss.item(),
        "logits_sample": [float(v) for v in logits[0, 0, :8]],
        "train": train,
    })
    # Read back and compare with what was computed.
    back = read_safetensors(os.path.join(d, "model.safetensors"))
    for k, v in P.items():
        assert torch.equal(back[k].to(DT), v.detach()), k
    print(f"{name}: loss {loss.item():.10f}  losses {losses[0]:.4f} -> {losses[-1]:.4f}  "
          f"grad_norm0 {norms[0]:.4f}  params {sum(p.numel() for p in P.values())}")


# ----------------------------------------------------------------------------------------------
# Hugging Face layout as published: sharded, half precision
# ----------------------------------------------------------------------------------------------

HF_FIXTURES = {
    # Context extension: trained at 64 positions (original_max_position_embeddings), run at T = 96.
    "hf-llama3-bf16": dict(
        model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=176, vocab_size=320, rope_theta=10000.0,
        rms_norm_eps=1e-5, max_position_embeddings=256, tie_word_embeddings=False,
        rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=64),
        dtype="bfloat16", shards=3, batch=1, seq=96, seed=2001),
    # yarn with factor = max_position_embeddings / original_max_position_embeddings, so transformers
    # versions that derive the factor from those two fields agree with those that read "factor".
    "hf-yarn-bf16": dict(
        model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, intermediate_size=176, vocab_size=320, rope_theta=10000.0,
        rms_norm_eps=1e-5, max_position_embeddings=256, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=64),
        dtype="bfloat16", shards=2, batch=1, seq=96, seed=2002),
    # GPT-2 as the original checkpoints are laid out: names without "transformer.", Conv1D weights,
    # the causal-mask buffers "h.N.attn.bias" stored beside the weights; fp16.
    "hf-gpt2-fp16": dict(
        model_type="gpt2", n_embd=64, n_layer=2, n_head=4, n_inner=256, vocab_size=320,
        n_positions=64, layer_norm_epsilon=1e-5,
        dtype="float16", shards=2, batch=2, seq=32, seed=2003),
}

ST_DTYPE = {"bfloat16": ("BF16", torch.bfloat16), "float16": ("F16", torch.float16), "float32": ("F32", torch.float32)}


def tensor_bytes(t, dtype_name):
    code, tdt = ST_DTYPE[dtype_name]
    a = t.detach().to(tdt).contiguous()
    if tdt == torch.float32:
        return code, a.numpy().astype("<f4", copy=False).tobytes()
    return code, a.view(torch.int16).numpy().astype("<i2", copy=False).tobytes()


def write_safetensors_typed(path, tensors, dtype_name):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        code, b = tensor_bytes(t, dtype_name if t.is_floating_point() else "float32")
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def write_llmc_shard(path, tokens):
    """llm.c shard: int32[256] header (magic 20240520, version 1, count), then uint16 tokens."""
    hdr = [0] * 256
    hdr[0], hdr[1], hdr[2] = 20240520, 1, len(tokens)
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *hdr))
        f.write(struct.pack("<%dH" % len(tokens), *[int(t) for t in tokens]))


def generate_hf_fixture(name, spec, outdir):
    cfg = dict(spec)
    B, T, seed = cfg.pop("batch"), cfg.pop("seq"), cfg.pop("seed")
    dtype_name, shards = cfg.pop("dtype"), cfg.pop("shards")
    gen = torch.Generator().manual_seed(seed)
    P = init_params(cfg, gen)
    # Weights as published in half precision: the reference runs on the rounded values.
    tdt = ST_DTYPE[dtype_name][1]
    P = {k: v.detach().to(tdt).to(DT).requires_grad_(True) for k, v in P.items()}
    V = cfg["vocab_size"]
    tokens = torch.randint(0, V, (B * T + 1,), generator=gen, dtype=torch.int64)
    idx, tgt = tokens[:-1].view(B, T), tokens[1:].view(B, T)
    logits = forward(cfg, P, idx)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
    grads = torch.autograd.grad(loss, list(P.values()))

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    published = dict(P)
    if cfg["model_type"] == "gpt2":
        published = {k[len("transformer."):]: v for k, v in P.items()}
        n = cfg["n_positions"]
        mask = torch.tril(torch.ones(n, n, dtype=DT)).view(1, 1, n, n)
        for i in range(cfg["n_layer"]):
            published[f"h.{i}.attn.bias"] = mask
    names = list(published.keys())
    per = (len(names) + shards - 1) // shards
    weight_map, total = {}, 0
    for s_i in range(shards):
        part = names[s_i * per:(s_i + 1) * per]
        fname = "model-%05d-of-%05d.safetensors" % (s_i + 1, shards)
        total += write_safetensors_typed(os.path.join(d, fname), {k: published[k] for k in part}, dtype_name)
        for k in part:
            weight_map[k] = fname
    write_json(os.path.join(d, "model.safetensors.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})
    keys = LLAMA_CONFIG_KEYS if cfg["model_type"] == "llama" else GPT2_CONFIG_KEYS
    conf = {k: cfg[k] for k in keys}
    if cfg.get("rope_scaling"):
        conf["rope_scaling"] = cfg["rope_scaling"]
    conf["torch_dtype"] = dtype_name
    conf["architectures"] = ["LlamaForCausalLM" if cfg["model_type"] == "llama" else "GPT2LMHeadModel"]
    write_json(os.path.join(d, "config.json"), conf)
    write_safetensors(os.path.join(d, "grads.safetensors"), dict(zip(P.keys(), grads)))
    write_llmc_shard(os.path.join(d, "tokens.bin"), tokens.tolist())
    write_json(os.path.join(d, "expected.json"), {"batch": B, "seq": T, "loss": loss.item(),
                                                   "logits_sample": [float(v) for v in logits[0, -1, :8]]})
    print(f"{name}: {dtype_name} in {shards} shards, B {B} T {T}, loss {loss.item():.10f}")


# ----------------------------------------------------------------------------------------------
# Self-check
# ----------------------------------------------------------------------------------------------


def llama_forward_loops(cfg, P, idx):
    """Independent, per-token / per-head llama forward used only to cross-check llama_forward."""
    B, T = idx.shape
    C, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    Hq, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // Hq
    half = D // 2
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]

    def rope(vec, pos):  # vec [D], pair (i, i + D/2)
        out = vec.clone()
        for i in range(half):
            ang = pos * theta ** (-2.0 * i / D)
            c, s = math.cos(ang), math.sin(ang)
            out[i] = vec[i] * c - vec[i + half] * s
            out[i + half] = vec[i + half] * c + vec[i] * s
        return out

    def rms(v, w):
        return v / math.sqrt(float((v * v).mean()) + eps) * w

    out = torch.zeros(B, T, cfg["vocab_size"], dtype=DT)
    with torch.no_grad():
        for b in range(B):
            x = [P["model.embed_tokens.weight"][int(idx[b, t])].clone() for t in range(T)]
            for i in range(L):
                p = f"model.layers.{i}."
                hs = [rms(x[t], P[p + "input_layernorm.weight"]) for t in range(T)]
                Wq, Wk, Wv = (P[p + "self_attn.q_proj.weight"], P[p + "self_attn.k_proj.weight"],
                              P[p + "self_attn.v_proj.weight"])
                qs = [[rope(Wq[h * D:(h + 1) * D] @ hs[t], t) for h in range(Hq)] for t in range(T)]
                ks = [[rope(Wk[h * D:(h + 1) * D] @ hs[t], t) for h in range(Hkv)] for t in range(T)]
                vs = [[Wv[h * D:(h + 1) * D] @ hs[t] for h in range(Hkv)] for t in range(T)]
                newx = []
                for t in range(T):
                    y = torch.zeros(Hq * D, dtype=DT)
                    for h in range(Hq):
                        g = h // (Hq // Hkv)
                        sc = torch.tensor([float(qs[t][h] @ ks[j][g]) / math.sqrt(D) for j in range(t + 1)], dtype=DT)
                        w = torch.exp(sc - sc.max())
                        w = w / w.sum()
                        y[h * D:(h + 1) * D] = sum(w[j] * vs[j][g] for j in range(t + 1))
                    x1 = x[t] + P[p + "self_attn.o_proj.weight"] @ y
                    hh = rms(x1, P[p + "post_attention_layernorm.weight"])
                    gg = P[p + "mlp.gate_proj.weight"] @ hh
                    uu = P[p + "mlp.up_proj.weight"] @ hh
                    newx.append(x1 + P[p + "mlp.down_proj.weight"] @ (gg / (1 + torch.exp(-gg)) * uu))
                x = newx
            head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
            for t in range(T):
                out[b, t] = head @ rms(x[t], P["model.norm.weight"])
    return out


def gpt2_forward_torch_ops(cfg, P, idx):
    """GPT-2 forward written with torch.nn.functional building blocks, to cross-check gpt2_forward."""
    F = torch.nn.functional
    B, T = idx.shape
    C, L, H = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
    D = C // H
    eps = cfg["layer_norm_epsilon"]
    x = F.embedding(idx, P["transformer.wte.weight"]) + P["transformer.wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(L):
        p = f"transformer.h.{i}."
        h = F.layer_norm(x, (C,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], eps)
        qkv = F.linear(h, P[p + "attn.c_attn.weight"].T, P[p + "attn.c_attn.bias"])
        heads = []
        for hd in range(H):
            q = qkv[..., hd * D:(hd + 1) * D]
            k = qkv[..., C + hd * D:C + (hd + 1) * D]
            v = qkv[..., 2 * C + hd * D:2 * C + (hd + 1) * D]
            s = torch.einsum("btd,bsd->bts", q, k) / math.sqrt(D)
            s = torch.where(mask, s, torch.tensor(torch.finfo(DT).min, dtype=DT))
            heads.append(torch.einsum("bts,bsd->btd", F.softmax(s, -1), v))
        y = torch.cat(heads, -1)
        x = x + F.linear(y, P[p + "attn.c_proj.weight"].T, P[p + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], eps)
        h = F.gelu(F.linear(h, P[p + "mlp.c_fc.weight"].T, P[p + "mlp.c_fc.bias"]), approximate="tanh")
        x = x + F.linear(h, P[p + "mlp.c_proj.weight"].T, P[p + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    return F.linear(x, P["transformer.wte.weight"])


def selfcheck():
    ok = True

    def report(what, err, tol):
        nonlocal ok
        good = err < tol
        ok &= good
        print(f"  {'ok ' if good else 'BAD'} {what}: {err:.3e} (tol {tol:.0e})")

    for name, spec in FIXTURES.items():
        print(name)
        cfg = dict(spec)
        B, T, seed = cfg.pop("batch"), cfg.pop("seq"), cfg.pop("seed")
        gen = torch.Generator().manual_seed(seed)
        P = init_params(cfg, gen)
        V = cfg["vocab_size"]
        tokens = torch.randint(0, V, (10 * B * T + 1,), generator=gen, dtype=torch.int64)
        idx, tgt = batch_at(tokens, 0, B, T)
        logits = forward(cfg, P, idx)

        # 1. Independent re-implementation of the forward pass.
        alt = llama_forward_loops(cfg, P, idx) if cfg["model_type"] == "llama" else gpt2_forward_torch_ops(cfg, P, idx)
        report("forward vs independent implementation (max abs logits diff)",
               (logits - alt).abs().max().item(), 1e-12)

        # 2. Causality: changing the last token of row 0 leaves earlier logits unchanged.
        idx2 = idx.clone()
        idx2[0, -1] = (idx2[0, -1] + 1) % V
        l2 = forward(cfg, P, idx2)
        report("causality (earlier positions unchanged)", (l2[:, :-1] - logits[:, :-1]).abs().max().item(), 1e-14)
        changed = (l2[0, -1] - logits[0, -1]).abs().max().item()
        ok &= changed > 1e-3
        print(f"  {'ok ' if changed > 1e-3 else 'BAD'} last position does change: {changed:.3e} (must be > 1e-03)")

        # 3. Directional finite differences of the loss for every parameter.
        loss = loss_fn(cfg, P, idx, tgt)
        grads = dict(zip(P.keys(), torch.autograd.grad(loss, list(P.values()))))
        g2 = torch.Generator().manual_seed(7)
        worst = 0.0
        for k, p in P.items():
            v = torch.randn(p.shape, generator=g2, dtype=DT)
            h = 1e-5
            with torch.no_grad():
                Pp = {kk: (vv + h * v if kk == k else vv) for kk, vv in P.items()}
                Pm = {kk: (vv - h * v if kk == k else vv) for kk, vv in P.items()}
                fd = (loss_fn(cfg, Pp, idx, tgt) - loss_fn(cfg, Pm, idx, tgt)).item() / (2 * h)
            an = float((grads[k] * v).sum())
            worst = max(worst, abs(fd - an) / max(abs(an), 1e-6))
        report("directional finite differences, all parameters (worst rel err)", worst, 1e-5)

        # 4. torch.autograd.gradcheck on one 1-D parameter (the final norm weight).
        last = "model.norm.weight" if cfg["model_type"] == "llama" else "transformer.ln_f.weight"

        def f(w):
            Q = dict(P)
            Q[last] = w
            return loss_fn(cfg, Q, idx, tgt)

        gc = torch.autograd.gradcheck(f, (P[last].detach().clone().requires_grad_(True),), eps=1e-6, atol=1e-8)
        report("gradcheck on " + last + " (0 = pass)", 0.0 if gc else 1.0, 0.5)

        # 5. The same computation in float32 stays within the tolerances the README gives the
        #    fp32 engine (gradients per tensor, training losses, grad norms).
        g64 = [g for g in grads.values()]
        l64, n64, _ = train_trace(cfg, P, tokens, B, T, TRAIN)
        P32 = {kk: vv.detach().float().requires_grad_(True) for kk, vv in P.items()}
        g32 = torch.autograd.grad(loss_fn(cfg, P32, idx, tgt), list(P32.values()))
        l32, n32, _ = train_trace(cfg, P32, tokens, B, T, TRAIN)
        report("fp32 run: worst per-tensor gradient max|a-b|/max|b|",
               max(((a - b.double()).abs().max() / a.abs().max()).item() for a, b in zip(g64, g32)), 1e-4)
        report("fp32 run: worst training-loss |a-b|", max(abs(a - b) for a, b in zip(l64, l32)), 1e-4)
        report("fp32 run: worst grad-norm relative diff", max(abs(a - b) / a for a, b in zip(n64, n32)), 1e-3)

    # 6. RoPE: rotated q.k depends only on the position difference.
    D, theta = 16, 10000.0
    cos, sin = rope_cos_sin(40, D, theta, DT)
    g3 = torch.Generator().manual_seed(3)
    q, k = torch.randn(D, generator=g3, dtype=DT), torch.randn(D, generator=g3, dtype=DT)
    rq = lambda v, p: v * cos[p] + rotate_half(v) * sin[p]  # noqa: E731
    d1 = float(rq(q, 7) @ rq(k, 3))
    d2 = float(rq(q, 30) @ rq(k, 26))
    print("rope")
    report("relative-position invariance", abs(d1 - d2), 1e-12)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="fixtures root directory (e.g. tests/Memo.Tests/Fixtures)")
    ap.add_argument("--only", nargs="*", help="fixture names to generate (default: all)")
    ap.add_argument("--selfcheck", action="store_true", help="check the model definitions and exit")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.selfcheck:
        ok = selfcheck()
        print("selfcheck", "passed" if ok else "FAILED")
        sys.exit(0 if ok else 1)
    if not args.out:
        ap.error("--out is required (or use --selfcheck)")
    for name in args.only or list(FIXTURES) + list(HF_FIXTURES):
        if name in HF_FIXTURES:
            generate_hf_fixture(name, HF_FIXTURES[name], args.out)
        else:
            generate_fixture(name, FIXTURES[name], args.out)


if __name__ == "__main__":
    main()
