#!/usr/bin/env bash
# Communication hidden behind compute in ring attention, before and after a change, and the progress
# options: 2 MPI ranks x 1 thread running llama-small's attention (Memo.Distributed.Bench run), interleaved
#   A  BASE (a git revision, e.g. the commit before the progress thread)
#   B  this tree (progress thread; memo's default UCX_TLS: self,posix,sysv with every rank on one host)
#   C  this tree with UCX_TLS=all (UCX's cma zero-copy transport allowed)
#   D  BASE with MPIR_CVAR_ASYNC_PROGRESS=1 (MPICH's own progress thread)
#   E  this tree with UCX_TLS=^cma (loopback TCP allowed: the default across hosts)
# Usage: [VARIANTS="A B C D E"] [OUT=ring-overlap] bench/ring-overlap.sh BASE [machine-name] [pairs] [repetitions per run] [seqs, space-separated]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/ring-overlap.sh BASE [machine] [pairs] [reps] [seqs]}
machine=${2:-amd-epyc-zen5-2core}
pairs=${3:-3}
reps=${4:-2}
seqs=${5:-8192 16384}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
variants=${VARIANTS:-A B C D E}
out=${OUT:-ring-overlap} # the results files: benchmarks/MACHINE/OUT.md and .jsonl
if [[ " $variants " == *" A "* || " $variants " == *" D "* ]]; then
  git archive "$base" | tar -x -C "$work" --one-top-level=base
  (cd "$work/base" && dotnet build bench/Memo.Distributed.Bench -c Release -o "$work/a" >/dev/null)
fi
dotnet build bench/Memo.Distributed.Bench -c Release -o "$work/b" >/dev/null
export MEMO_THREADS=1
load_before=$(cat /proc/loadavg)
: > "$work/results.jsonl"
for T in $seqs; do
  for p in $(seq 1 "$pairs"); do
    for v in $variants; do
      case $v in
        A) env=(); dll=$work/a ;;
        B) env=(); dll=$work/b ;;
        C) env=(UCX_TLS=all); dll=$work/b ;;
        D) env=(MPIR_CVAR_ASYNC_PROGRESS=1); dll=$work/a ;;
        E) env=(UCX_TLS=^cma); dll=$work/b ;;
      esac
      line=$(env "${env[@]}" mpiexec -n 2 dotnet "$dll/Memo.Distributed.Bench.dll" run --seq "$T" --reps "$reps" --threads 1 | grep '^{')
      echo "{\"variant\":\"$v\",\"r\":$line}" >> "$work/results.jsonl"
      echo "T=$T pair $p $v: $line" >&2
    done
  done
done
load_after=$(cat /proc/loadavg)
sched="$(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup'), process nice $(nice)"
mkdir -p "benchmarks/$machine"
python3 - "$work/results.jsonl" "$base" "$pairs" "$reps" "$load_before" "$load_after" "$seqs" "$sched" > "benchmarks/$machine/$out.md" <<'PY'
import json, statistics, sys
path, base, pairs, reps, lb, la, seqs = sys.argv[1:8]
rows = [json.loads(l) for l in open(path)]
order = " ".join(sorted(set(x["variant"] for x in rows), key="ABCDE".index))
names = {"A": f"{base}", "B": "this tree, default UCX_TLS (self,posix,sysv on one host)", "C": "this tree, UCX_TLS=all (cma)", "D": f"{base} + MPIR_CVAR_ASYNC_PROGRESS=1", "E": "this tree, UCX_TLS=^cma (loopback TCP allowed)"}
def cell(xs, f="{:.3f}"):
    return f"{f.format(statistics.median(xs))} [{f.format(min(xs))}, {f.format(max(xs))}]"
print("# Ring attention: communication hidden behind compute (2 MPI ranks x 1 thread)\n")
print(f"llama-small attention (4 layers, 4 query heads over 2 kv heads, head dim 32, batch 1), forward then backward of every layer per repetition; {reps} timed repetition(s) per run after a warm-up, the run's median; {pairs} runs of each variant, interleaved in the order {order}; cells: median over runs [min, max].")
print(f"Load (/proc/loadavg) before `{lb}`, after `{la}`; scheduling: {sys.argv[8]} (bench/priority.sh raises both; at nice 0 other sessions share the cores). MPICH 4.0.2 (ch4:ucx), `mpiexec -n 2`.")
print("Step: the slower rank's seconds per repetition. Exposed wait: rank 0's waits after its compute (includes waiting for the slower rank). Alone: the same transfers with no compute. Transfer / exposed: rank 0's sum over hops of post to completion as the progress thread saw it, and the part after the overlapped compute had ended (this tree's variants only); hidden = 1 - exposed / transfer.\n")
print("| T | variant | step (s) | exposed wait (s) | transfer alone (s) | transfer (s) | exposed (s) | hidden |")
print("|---|---|---|---|---|---|---|---|")
for T in seqs.split():
    for v in "ABCDE":
        rs = [x["r"] for x in rows if x["variant"] == v and str(x["r"]["Seq"]) == T]
        if not rs: continue
        tr = [r.get("TransferSeconds", 0) for r in rs]; ex = [r.get("ExposedSeconds", 0) for r in rs]
        hid = [1 - e / t for e, t in zip(ex, tr) if t > 0]
        print(f"| {T} | {v}: {names[v]} | {cell([r['Seconds'] for r in rs])} | {cell([r['WaitSeconds'] for r in rs])} | {cell([r['TransferAloneSeconds'] for r in rs])} | "
              + (f"{cell(tr)} | {cell(ex)} | {cell(hid, '{:.0%}')} |" if any(tr) else "- | - | - |"))
print(f"\nCommand: `VARIANTS=\"{order}\" bench/ring-overlap.sh {base} <machine> {pairs} {reps} \"{seqs}\"`")
PY
cat "benchmarks/$machine/$out.md"
cp "$work/results.jsonl" "benchmarks/$machine/$out.jsonl"
