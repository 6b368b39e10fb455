#!/usr/bin/env python3
"""Regenerates the tables of docs/plan-vs-paper.md from `memo plan --json`.

Usage: MEMO="dotnet run --project src/Memo.Cli -c Release --" python3 docs/plan-vs-paper.py > tables.md
(MEMO is the command that runs the memo CLI; default "memo"). EXTRA holds flags added to every call, e.g.
EXTRA="--without cpu-checkpointing,offload,pipeline" for the baselines with only the features the paper lists.
PARTS selects sections: "maxseq,grid,points" (default all).
"""
import json, os, shlex, subprocess, sys

MEMO = shlex.split(os.environ.get("MEMO", "memo"))
EXTRA = shlex.split(os.environ.get("EXTRA", ""))
PARTS = os.environ.get("PARTS", "maxseq,grid,points").split(",")
STRATEGIES = ["memo", "megatron", "deepspeed", "keep"]
CONFIGS = [("paper-7b", 8), ("paper-13b", 16), ("paper-30b", 32), ("paper-65b", 64)]
SEQS = ["128K", "256K", "512K", "1M", "2M", "4M"]


def plan(*args):
    out = subprocess.run(MEMO + ["plan", *args, *EXTRA, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def count(n):
    return f"{n // 1048576}M" if n % 1048576 == 0 and n >= 1048576 else f"{n // 1024}K"


def cell(p):
    if p["fits"]:
        return f"{100 * p['mfu']:.1f}%"
    if p["tp"] is None:
        return "n/a"
    return "OOM"


def lay(p):
    pp = f"·pp{p['pipeline_stages']}" if (p.get("pipeline_stages") or 1) > 1 else ""
    return (f"sp{p['cp']}·z{p['zero_stage']}" if p["sequence_sharding"] == "ulysses" else f"tp{p['tp']}·cp{p['cp']}") + pp


def feats(p):
    f = p["features"]
    out = []
    if f["checkpointing"] not in ("none", "token-wise (memo)", "-"):
        out.append(f["checkpointing"].replace("full ", "full "))
    if f["selective_recompute"] and "full" in f["checkpointing"]:
        out.append("selective")
    if f["cpu_checkpointing"]:
        out.append("cpu-ckpt")
    if f["offloaded_layers"]:
        out.append(f"offload {f['offloaded_layers']}")
    return ", ".join(out)


if "maxseq" in PARTS:
  print("### Longest sequence that fits (multiple of 1K)\n")
  print("| model | GPUs | memo | megatron | deepspeed | keep |")
  print("|---|---|---|---|---|---|")
  for model, gpus in [(m, g) for m, _ in CONFIGS for g in (8, 16, 32, 64)]:
      r = plan("--model", model, "--gpus", str(gpus), "--max-seq")
      cells = []
      for e in r["max_seq"]:
          p = e["plan"]
          if e["max_seq"] == 0:
              cells.append("none" if p["tp"] is not None else "n/a")
          else:
              extra = feats(p)
              cells.append(f"{count(e['max_seq'])} ({lay(p)}{', ' + extra if extra else ''}, {100 * p['mfu']:.0f}%)")
      print(f"| {model[6:].upper()} | {gpus} | " + " | ".join(cells) + " |")

if "grid" in PARTS:
  print("\n### Predicted MFU by sequence length: memo / megatron / deepspeed\n")
  print("MFU with attention counted for the causal half (the paper's convention). OOM: no configuration fits;")
  print("n/a: no layout applies (Ulysses needs a degree dividing the heads).\n")
  totals = {s: [] for s in STRATEGIES}
  totals_full = {s: [] for s in STRATEGIES}
  pairs = {"megatron": [], "deepspeed": []}
  for model, _ in CONFIGS:
      print(f"\n{model[6:].upper()}:\n")
      print("| GPUs | " + " | ".join(SEQS) + " |")
      print("|---|" + "---|" * len(SEQS))
      for gpus in (8, 16, 32, 64):
          row = []
          for seq in SEQS:
              r = plan("--model", model, "--gpus", str(gpus), "--seq", seq)
              by = {p["strategy"]: p for p in r["strategies"]}
              row.append(" / ".join(cell(by[s]).rstrip("%") for s in STRATEGIES[:3]))
              for s in STRATEGIES:
                  if by[s]["fits"]:
                      totals[s].append(by[s]["mfu"])
                      totals_full[s].append(by[s]["mfu_full_attention"])
              for s in pairs:
                  if by["memo"]["fits"] and by[s]["fits"]:
                      pairs[s].append(by["memo"]["mfu"] / by[s]["mfu"])
          print(f"| {gpus} | " + " | ".join(row) + " |")

  print("\n### Averages over the grid above\n")
  print("| | memo | megatron | deepspeed | keep |")
  print("|---|---|---|---|---|")
  print("| points that fit | " + " | ".join(str(len(totals[s])) for s in STRATEGIES) + " |")
  print("| mean MFU where it fits (causal) | " + " | ".join(f"{100 * sum(v) / len(v):.1f}%" if v else "-" for v in totals.values()) + " |")
  print("| mean MFU where it fits (full attention) | " + " | ".join(f"{100 * sum(v) / len(v):.1f}%" if v else "-" for v in totals_full.values()) + " |")
  print()
  for s, v in pairs.items():
      if v:
          print(f"- memo / {s} MFU where both fit: mean {sum(v) / len(v):.2f}x over {len(v)} points")

if "points" in PARTS:
  print("\n### Single points the paper reports\n")
  for args in (["--model", "paper-7b", "--gpus", "8", "--seq", "1M"],
               ["--model", "paper-7b", "--gpus", "8", "--seq", "1M", "--tp", "8"],
               ["--model", "llama-7b", "--gpus", "8", "--seq", "1M"],
               ["--model", "paper-65b", "--gpus", "64", "--seq", "1408K"],
               ["--model", "paper-65b", "--gpus", "64", "--seq", "1408K", "--tp", "8", "--cp", "8", "--pp", "1"]):
      r = plan(*args)
      for m in r["strategies"]:
          if m["tp"] is None:
              print(f"- `memo plan {' '.join(args + EXTRA)}`: {m['strategy']}: {m['reason']}")
              continue
          gib = m["device_peak_bytes"] / 2**30
          mfu = f"{100 * m['mfu']:.1f}% (full attention {100 * m['mfu_full_attention']:.1f}%)" if m["fits"] else "OOM"
          alpha = f", alpha {m['alpha']:.3f}" if m["alpha"] is not None else ""
          where = f"{lay(m)}" if m["tp"] is not None else "no layout"
          extra = feats(m) if m["tp"] is not None else ""
          print(f"- `memo plan {' '.join(args + EXTRA)}`: {m['strategy']} {mfu}, {where}{', ' + extra if extra else ''}{alpha}, peak {gib:.2f} GiB")

  # Shortest sequence at which a whole layer's copy hides behind its forward (alpha reaches 1), 7B, 8 GPUs, TP=8.
  def alpha_at(seq):
      return plan("--model", "paper-7b", "--gpus", "8", "--tp", "8", "--pp", "1", "--strategy", "memo", "--seq", str(seq))["strategies"][0]["alpha"]
  lo, hi = 32 * 1024, 512 * 1024
  while hi - lo > 1024:
      mid = (lo + hi) // 2 // 1024 * 1024
      if alpha_at(mid) >= 1:
          hi = mid
      else:
          lo = mid
  print(f"- whole-layer swap hidden (alpha = 1) from {count(hi)} tokens (7B, 8 x A800, TP=8)")
