#!/usr/bin/env bash
# Context-parallel training against one process: llama-small on the recall task at T = 8K, 16K, 32K,
# one process with 2 threads (A) vs mpiexec -n 2 --cp 2 with 1 thread per rank (B), interleaved A B A B.
# Per run: 3 optimizer steps; step 1 (JIT warm-up) is dropped, the run's figure is the median of steps 2-3.
# Beside each measurement, what `memo plan --gpu cpu` predicts for the same layout (per-rank device peak, ring
# bytes, step time). Share of communication hidden = 1 - ring_exposed_ms / ring_transfer_ms (rank 0's log).
# Needs MPICH (apt-get install mpich) and python3. Usage: bench/cp-train.sh [machine-name] [pairs] [seqs]
# (on a shared machine: bench/priority.sh bench/cp-train.sh ...)
set -euo pipefail
cd "$(dirname "$0")/.."
machine=${1:-amd-epyc-zen5-2core}
pairs=${2:-2}
seqs=${3:-"8192 16384 32768"}
out=benchmarks/$machine
mkdir -p "$out"
dotnet build src/Memo.Cli -c Release -o artifacts/cp-bench >/dev/null
memo=$PWD/artifacts/cp-bench/memo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load_before=$(cat /proc/loadavg)
common="--model llama-small --steps 3 --curriculum 0 --eval-samples 0"
for T in $seqs; do
  "$memo" train $common --seq "$T" --dry-run > "$work/dry1-$T.txt"
  "$memo" train $common --seq "$T" --dry-run --cp 2 > "$work/dry2-$T.txt"
  "$memo" plan --gpu cpu --model llama-small --seq "$T" --threads 2 --strategy keep --json > "$work/plan1-$T.json"
  "$memo" plan --gpu cpu --model llama-small --seq "$T" --cp 2 --threads 1 --strategy keep --json > "$work/plan2-$T.json"
  for i in $(seq 1 "$pairs"); do
    (cd "$work" && "$memo" train $common --seq "$T" --threads 2 --log "a-$T-$i.jsonl" 2>/dev/null)
    (cd "$work" && mpiexec -n 2 "$memo" train $common --seq "$T" --threads 1 --cp 2 --log "b-$T-$i.jsonl" 2>/dev/null)
    echo "T=$T pair $i done" >&2
  done
done
load_after=$(cat /proc/loadavg)
sched="$(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup'), process nice $(nice)"
mpich=$(mpichversion 2>/dev/null | awk -F: '/Version/{gsub(/[ \t]/,"",$2); print $2}' || true)
mpich="$mpich, UCX_TLS ${UCX_TLS:-unset, so self,posix,sysv with every rank on one host}"
python3 - "$work" "$out/context-parallel.md" "$pairs" "$seqs" "$load_before" "$load_after" "$sched" "${mpich:-unknown}" <<'PY'
import json, re, statistics, sys, glob, os
work, out, pairs, seqs, lb, la, sched, mpich = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(), sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
def steps(path): return [json.loads(l) for l in open(path) if l.strip()]
def per_run(kind, T, key):
    vals = []
    for f in sorted(glob.glob(f"{work}/{kind}-{T}-*.jsonl")):
        s = steps(f)[1:]
        vals.append(statistics.median(x[key] for x in s))
    return vals
def mib(b): return f"{b / 2**20:.1f} MiB"
def plan(T, cp):
    p = json.load(open(f"{work}/plan{cp}-{T}.json"))["strategies"][0]
    return p, p.get("time", {})
def dry(T, cp, label):
    text = open(f"{work}/dry{cp}-{T}.txt").read()
    m = re.search(label + r"\s+([\d.]+) (B|KiB|MiB|GiB)", text)
    v = float(m.group(1)) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[m.group(2)]
    return v
lines = ["# Context-parallel training: one process (2 threads) vs 2 MPI ranks (--cp 2, 1 thread each)", "",
 f"llama-small (4 layers, hidden 128, 4/2 heads of 32) on the recall task, batch 1, keep policy, 3 optimizer steps per run; "
 f"step 1 (JIT warm-up) dropped, each run's figure is the median of steps 2-3; {pairs} run(s) of each, interleaved A B A B; "
 "table: median over runs [min, max]. Device figures are rank 0's (`device_peak_bytes` of the log, measured by the arena). "
 "Activation bytes of one process = its planned device peak minus parameters, gradients and optimizer state (`memo train --dry-run`). "
 "Ring bytes: measured by the ring on rank 0 per step (`ring_bytes`). "
 "Exposed: rank 0's waits for the ring after its attention compute (`ring_exposed_ms`; includes waiting for the slower rank); "
 "transfer: the summed time from posting each ring transfer to its completion (`ring_transfer_ms`); hidden = 1 - exposed / transfer. "
 "Planned: `memo plan --gpu cpu --model llama-small --seq T [--cp 2 --threads 1 | --threads 2] --strategy keep --json` (assumed rates, not `--measure`).", "",
 f"Load (/proc/loadavg) before `{lb}`, after `{la}`; scheduling: {sched} (bench/priority.sh raises both; at nice 0 other sessions share the cores). MPICH {mpich}.", "",
 "| T | one process step (ms) | planned | --cp 2 step (ms) | planned | cp2 / one | one: device peak | one: activation bytes | cp2: per-rank device peak | planned | per-rank peak / one's activations | ring bytes measured | planned | ring compute (ms) | ring transfer (ms) | exposed wait (ms) | hidden |",
 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for T in seqs:
    a = per_run("a", T, "step_ms"); b = per_run("b", T, "step_ms")
    if not a or not b: continue
    peak1 = steps(glob.glob(f"{work}/a-{T}-*.jsonl")[0])[-1]["device_peak_bytes"]
    peak2 = steps(glob.glob(f"{work}/b-{T}-*.jsonl")[0])[-1]["device_peak_bytes"]
    state = dry(T, 1, "device parameters") + dry(T, 1, "device gradients") + dry(T, 1, "device optimizer state")
    act1 = dry(T, 1, r"device peak \(planned\)") - state
    rb = statistics.median(per_run("b", T, "ring_bytes"))
    p1, t1 = plan(T, 1); p2, t2 = plan(T, 2)
    rc = statistics.median(per_run("b", T, "ring_compute_ms")); rw = statistics.median(per_run("b", T, "ring_exposed_ms"))
    rt = statistics.median(per_run("b", T, "ring_transfer_ms"))
    hidden = f"{1 - rw / rt:.0%}" if rt > 0 else "n/a"
    ma, mb = statistics.median(a), statistics.median(b)
    lines.append(f"| {T} | {ma:.0f} [{min(a):.0f}, {max(a):.0f}] | {t1['predicted_step_s'] * 1000:.0f} | {mb:.0f} [{min(b):.0f}, {max(b):.0f}] | {t2['predicted_step_s'] * 1000:.0f} | {mb/ma:.2f} | "
                 f"{mib(peak1)} | {mib(act1)} | {mib(peak2)} | {mib(p2['device_peak_bytes'])} | {peak2/act1:.3f} | {rb:.0f} | {t2.get('ring_bytes_per_step', 0)} | {rc:.0f} | {rt:.0f} | {rw:.0f} | {hidden} |")
lines += ["", f"Command: `bench/cp-train.sh {os.path.basename(os.path.dirname(out))} {pairs} \"{' '.join(seqs)}\"`"]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
