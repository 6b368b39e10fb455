#!/usr/bin/env python3
"""PyTorch CPU baseline for the GPT-2 124M training-step benchmark.

Model: GPT-2 124M (C=768, 12 layers, 12 heads, F=3072, V=50257, P=1024, head tied to wte), float32,
defined as Hugging Face GPT2LMHeadModel / nanoGPT define it (pre-LayerNorm eps 1e-5, GELU tanh form).
One training step = zero_grad, forward (mean cross-entropy over B*T positions), backward,
clip_grad_norm_(1.0), AdamW step (lr 6e-4, betas 0.9/0.95, weight decay 0.1 on parameters with
ndim >= 2, 0 on norm weights and biases).

Attention: PyTorch 1.13 has no scaled_dot_product_attention, so this uses the standard manual
causal form that nanoGPT uses without flash attention: att = (q @ k^T) / sqrt(D), masked_fill of the
upper triangle with -inf, softmax, att @ v. It materialises the [B, H, T, T] score matrix.

Fair comparison: Memo backs its arena with 2 MiB transparent huge pages (madvise). Give PyTorch the
same by running it with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc then madvises its malloc'd
buffers for THP), e.g.

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 /usr/bin/python3 bench/pytorch/gpt2_step.py --threads 2

The printed "hugepages" field echoes GLIBC_TUNABLES so results say which setting they ran under.
Prints one JSON line.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, Fdim, eps):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=eps)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=eps)
        self.c_fc = nn.Linear(C, Fdim)
        self.mlp_proj = nn.Linear(Fdim, C)

    def attn(self, x):
        B, T, C = x.shape
        H, D = self.H, C // self.H
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT2(nn.Module):
    def __init__(self, C=768, L=12, H=12, Fdim=3072, V=50257, P=1024, eps=1e-5):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(P, C)
        self.h = nn.ModuleList([Block(C, H, Fdim, eps) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=eps)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        logits = x @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def blas_info():
    """Which BLAS this PyTorch calls: its build configuration and, where threadpoolctl is installed, the loaded library."""
    info = {"config": ", ".join(re.findall(r"(?:BLAS|LAPACK)_INFO=[^,\s]*", torch.__config__.show()))}
    try:
        import threadpoolctl
        info["threadpoolctl"] = [
            {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
            for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        info["threadpoolctl"] = "not installed"
    return info


def serve(step, args):
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": args.threads, "batch": args.batch,
                      "seq": args.seq, "hugepages": os.environ.get("GLIBC_TUNABLES"), "blas": blas_info()}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line or line == "quit":
            break
        times = []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000.0)
        print(json.dumps({"steps_ms": [round(t, 1) for t in times]}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--serve", action="store_true",
                    help="after warm-up, print one JSON line describing the setup, then for each line N read from stdin "
                         "run N timed steps and print their times as one JSON line (lets a caller alternate runs)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    B, T = args.batch, args.seq
    model = GPT2()
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, 50257, (B * T + 1,))
    idx, tgt = tokens[:-1].view(B, T), tokens[1:].view(B, T)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    if args.serve:
        serve(step, args)
        return
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000.0)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": B,
        "seq": T,
        "step_ms_median": round(med, 1),
        "tokens_per_s": round(B * T / (med / 1000.0), 1),
        "steps_ms": [round(t, 1) for t in times],
        "hugepages": os.environ.get("GLIBC_TUNABLES"),
        "blas": blas_info(),
    }))


if __name__ == "__main__":
    main()
