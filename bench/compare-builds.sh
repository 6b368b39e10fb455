#!/usr/bin/env bash
# Runs the GPT-2 step and memory-policy benchmarks of two builds interleaved (A B A B ...) and prints
# per-run figures plus medians, spread and the before/after ratio as a markdown table.
# Usage: bench/compare-builds.sh BASELINE_WORKTREE [rounds]
#   BASELINE_WORKTREE: a checkout of the commit to compare against, e.g. made with
#   git worktree add /work/baseline-ace5f47 ace5f47
# Shapes are kept small so that the whole comparison runs in minutes on two cores:
#   gpt2: GPT-2 124M, B=1, T=256, 3 timed steps after 1 warm-up (no PyTorch);
#   policies: llama-small, 4 layers, 1 x 1024 tokens, 3 rounds (+1 warm-up).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/compare-builds.sh BASELINE_WORKTREE [rounds]}
rounds=${2:-3}
dotnet build bench/Memo.Benchmarks -c Release -o artifacts/bench >/dev/null
(cd "$base" && dotnet build bench/Memo.Benchmarks -c Release -o artifacts/bench >/dev/null)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A bin=([before]="$base/artifacts/bench/Memo.Benchmarks" [after]="artifacts/bench/Memo.Benchmarks")
echo "load before: $(uptime)" >&2
for r in $(seq 1 "$rounds"); do
  for side in before after; do
    "${bin[$side]}" gpt2 --no-pytorch --threads 2 --batch 1 --seq 256 --steps 3 --warmup 1 --out "$tmp/gpt2-$side-$r.md" 2>/dev/null
    "${bin[$side]}" policies --model llama-small --layers 4 --seq 1024 --rounds 3 --out "$tmp/pol-$side-$r.md" 2>/dev/null
    echo "round $r $side done" >&2
  done
done
echo "load after: $(uptime)" >&2
python3 - "$tmp" "$rounds" <<'PY'
import sys, statistics, re
tmp, rounds = sys.argv[1], int(sys.argv[2])
def rows(path):
    out = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        m = re.match(r'^([0-9.]+)( \([0-9.]+-[0-9.]+\))?$', cells[1]) if len(cells) > 2 else None  # "714.1" or "714.1 (702.4-768.0)"
        if m: out[cells[0]] = float(m.group(1))
    return out
series = {}
for side in ('before', 'after'):
    for r in range(1, rounds + 1):
        for kind in ('gpt2', 'pol'):
            for name, ms in rows(f"{tmp}/{kind}-{side}-{r}.md").items():
                key = 'GPT-2 step (Memo)' if kind == 'gpt2' else f'policy {name}'
                series.setdefault(key, {}).setdefault(side, []).append(ms)
print('| benchmark | before ms (runs) | after ms (runs) | before median | after median | after/before | spread before | spread after |')
print('|---|---|---|---|---|---|---|---|')
for key, s in series.items():
    b, a = s.get('before', []), s.get('after', [])
    if not b or not a: continue
    mb, ma = statistics.median(b), statistics.median(a)
    spread = lambda x, m: f"{(max(x) - min(x)) / m * 100:.0f}%"
    print(f"| {key} | {', '.join(f'{x:.1f}' for x in b)} | {', '.join(f'{x:.1f}' for x in a)} | {mb:.1f} | {ma:.1f} | {ma / mb:.3f} | {spread(b, mb)} | {spread(a, ma)} |")
PY
