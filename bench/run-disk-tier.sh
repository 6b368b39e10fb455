#!/usr/bin/env bash
# The disk tier under a memory limit: llama, 8 layers, hidden 256 (bench/configs/llama-8x256.json), at one
# sequence length. Runs, alternating process by process (A B A B):
#   keep                          no limit: the step-time reference
#   memo --host-store disk:DIR    inside a memory cgroup whose limit keep cannot run in
#   memo --host-store memory      no limit (only with --compare-memory: the memory-vs-disk table)
# and once keep inside the limit, to show that it cannot run there. Reports per run peak RSS (GNU time),
# the cgroup's peak, median step time over the steps after the first, bytes written to and read from disk
# per step, disk I/O time and how much of it was exposed (waited on by compute); the rest is hidden.
#
# The memory cgroup: cgroup v2 (a child of this shell's cgroup, memory.max, memory.swap.max = 0), or v1
# (a child in the memory hierarchy, memory.limit_in_bytes and memory.memsw.limit_in_bytes where present),
# or systemd-run --scope -p MemoryMax when systemd runs the machine. Needs root for the first two.
#
# Runs append to benchmarks/<machine>/disk-tier-T<seq>.jsonl (with the commit that ran them; --fresh starts
# it anew) and the table is built from every run there, so the runs may be taken in several sittings
# (--runs keep,disk,memory,keep-limited picks which).
#
# Usage: bench/run-disk-tier.sh [--seq 32K] [--limit 2.5GiB] [--steps 3] [--rounds 2] [--policy memo]
#                               [--alpha A] [--dir DIR] [--machine NAME] [--compare-memory]
#                               [--runs keep,disk,keep-limited] [--fresh] [--bin DIR (build output, default artifacts/memo)]
set -euo pipefail
cd "$(dirname "$0")/.."
orig_args="$*"
seq=32K; limit=2.5GiB; steps=3; rounds=2; dir=${TMPDIR:-/var/tmp}; machine=amd-epyc-zen5-2core; compare=0; policy=memo; alpha=""
runs=""; fresh=0; bin=artifacts/memo
while [ $# -gt 0 ]; do
  case "$1" in
    --seq) seq=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --machine) machine=$2; shift 2 ;;
    --policy) policy=$2; shift 2 ;;
    --alpha) alpha=$2; shift 2 ;;
    --compare-memory) compare=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "run-disk-tier.sh: unknown option '$1'; see the usage lines at the top of the script" >&2; exit 2 ;;
  esac
done
python=/usr/bin/python3
to_bytes() { "$python" -c 'import sys,re
m=re.fullmatch(r"([0-9.]+)\s*([KMGT]?)(i?B?)",sys.argv[1].strip(),re.I)
if not m: sys.exit("bad size "+sys.argv[1])
print(int(float(m[1])*1024**" KMGT".index((m[2] or " ").upper())))' "$1"; }
limit_bytes=$(to_bytes "$limit")
out=benchmarks/$machine
mkdir -p "$out"
work=$(mktemp -d /tmp/memo-disk-tier.XXXXXX)
cg=""
cleanup() {
  if [ -n "$cg" ] && [ -d "$cg" ]; then rmdir "$cg" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

dotnet build src/Memo.Cli -c Release -o "$bin" >/dev/null
memo=$bin/memo
model=bench/configs/llama-8x256.json

# --- the memory cgroup -------------------------------------------------------------------------
cg_kind=""
make_cgroup() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    local parent=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
    cg=$parent/memo-bench-$$
    mkdir "$cg" && echo "$limit_bytes" >"$cg/memory.max" && { echo 0 >"$cg/memory.swap.max" 2>/dev/null || true; } && cg_kind=v2 && return 0
  elif [ -d /sys/fs/cgroup/memory ]; then
    local parent=/sys/fs/cgroup/memory$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)
    cg=$parent/memo-bench-$$
    if mkdir "$cg" 2>/dev/null && echo "$limit_bytes" >"$cg/memory.limit_in_bytes"; then
      if [ -f "$cg/memory.memsw.limit_in_bytes" ]; then echo "$limit_bytes" >"$cg/memory.memsw.limit_in_bytes"; fi
      cg_kind=v1; return 0
    fi
  fi
  cg=""
  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then cg_kind=systemd; return 0; fi
  echo "run-disk-tier.sh: cannot make a memory cgroup here (needs root and cgroup v1 or v2, or systemd); run as root" >&2
  exit 2
}
cg_reset() { case $cg_kind in v1) echo 0 >"$cg/memory.max_usage_in_bytes"; echo 0 >"$cg/memory.failcnt" ;; esac; }
cg_peak() {
  case $cg_kind in
    v1) cat "$cg/memory.max_usage_in_bytes" ;;
    v2) cat "$cg/memory.peak" 2>/dev/null || echo unknown ;;
    *) echo unknown ;;
  esac
}
cg_ooms() {
  case $cg_kind in
    v1) awk '$1=="oom_kill"{print $2}' "$cg/memory.oom_control" ;;
    v2) awk '$1=="oom_kill"{print $2}' "$cg/memory.events" ;;
    *) echo unknown ;;
  esac
}
in_cgroup() {
  if [ "$cg_kind" = systemd ]; then
    systemd-run --scope --quiet -p MemoryMax="$limit_bytes" -p MemorySwapMax=0 "$@"
  else
    bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
  fi
}
make_cgroup

# --- runs ----------------------------------------------------------------------------------------
results=$out/disk-tier-T$seq.jsonl
if [ "$fresh" = 1 ]; then : >"$results"; fi
touch "$results"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+changes")
if [ -z "$runs" ]; then runs=keep,disk$([ "$compare" = 1 ] && echo ,memory || true),keep-limited; fi
want_run() { [[ ",$runs," == *",$1,"* ]]; }
commands=()
one() { # name limited(0/1) memo-args...
  local name=$1 limited=$2; shift 2
  local log=$work/$name-$RANDOM.jsonl tfile=$work/time-$RANDOM
  local cmd=("$memo" train --model "$model" --task recall --seq "$seq" --steps "$steps" --curriculum 0 --eval-samples 0 --log "$log" "$@")
  local prefix=""
  if [ "$limited" = 1 ]; then prefix="[cgroup $limit] "; fi
  commands+=("$prefix${cmd[*]}")
  echo "== $name: ${cmd[*]}" >&2
  local rc=0 ooms0 peak=unlimited
  if [ "$limited" = 1 ]; then
    cg_reset; ooms0=$(cg_ooms)
    in_cgroup /usr/bin/time -f %M -o "$tfile" "${cmd[@]}" >"$work/$name.out" 2>&1 || rc=$?
    peak=$(cg_peak)
    if [ "$(cg_ooms)" != "$ooms0" ]; then rc="$rc (OOM-killed)"; fi
  else
    /usr/bin/time -f %M -o "$tfile" "${cmd[@]}" >"$work/$name.out" 2>&1 || rc=$?
  fi
  tail -2 "$work/$name.out" >&2
  "$python" - "$name" "$limited" "$rc" "$peak" "$tfile" "$log" "$commit" "$limit" "$(cut -d' ' -f1-3 /proc/loadavg)" "${cmd[*]}" >>"$results" <<'PY'
import json, sys, statistics, os
name, limited, rc, peak, tfile, log, commit, limit, load, command = sys.argv[1:11]
try:
    rss_kib = int(open(tfile).read().split()[-1])
except Exception:
    rss_kib = None
steps = []
try:
    steps = [json.loads(l) for l in open(log) if l.strip()]
except FileNotFoundError:
    pass
timed = steps[1:] if len(steps) > 1 else steps
def med(key):
    v = [s[key] for s in timed if key in s]
    return statistics.median(v) if v else None
print(json.dumps({"name": name, "limited": limited == "1", "limit": limit if limited == "1" else None, "commit": commit, "load": load,
                  "scheduling": f"{open('/proc/self/autogroup').read().strip() if os.path.exists('/proc/self/autogroup') else 'no autogroup'}, process nice {os.nice(0)}", "command": command, "rc": rc, "cgroup_peak": peak, "peak_rss_bytes": rss_kib * 1024 if rss_kib else None,
                  "steps": len(steps), "step_ms": [s.get("step_ms") for s in timed], "step_ms_median": med("step_ms"),
                  "loss_last": steps[-1]["loss"] if steps else None,
                  "disk_written_bytes": med("disk_written_bytes"), "disk_read_bytes": med("disk_read_bytes"),
                  "disk_io_ms": med("disk_io_ms"), "disk_wait_ms": med("disk_wait_ms"), "swapped_bytes": med("swapped_bytes"),
                  "copy_ms": med("copy_ms"), "exposed_copy_ms": med("exposed_copy_ms"), "alpha": med("alpha")}))
PY
}
memo_args=(--policy "$policy" ${alpha:+--alpha "$alpha"})
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
  if want_run keep; then one keep 0 --policy keep; fi
  if want_run disk; then one "$policy-disk" 1 "${memo_args[@]}" --host-store "disk:$dir"; fi
  if want_run memory; then one "$policy-memory" 0 "${memo_args[@]}" --host-store memory; fi
done
if want_run keep-limited; then one keep-limited 1 --policy keep; fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the table -----------------------------------------------------------------------------------
report=$out/disk-tier-T$seq.md
"$python" - "$results" "$seq" "$cg_kind" "$dir" >"$report.tmp" <<'PY'
import json, sys, statistics, datetime, os
res_path, seq, cg_kind, dirname = sys.argv[1:5]
runs = [json.loads(l) for l in open(res_path)]
def g(name): return [r for r in runs if r["name"] == name]
def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
def mib(b): return "n/a" if b is None else f"{b / 2**20:.0f} MiB"
def ms(v): return "n/a" if v is None else f"{v:.0f}"
keep_ms = med([r["step_ms_median"] for r in g("keep")])
limits = sorted({r["limit"] for r in runs if r.get("limit")})
print(f"### Disk tier: llama 8 layers, hidden 256 (bench/configs/llama-8x256.json), T = {seq}, memory limit {', '.join(limits) or 'none'}")
print()
print(f"- written {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC from {len(runs)} runs in {os.path.basename(res_path)}; {os.cpu_count()} cores; the machine was shared with other work (load average when each run ended, below)")
print(f"- scheduling of the runs: {'; '.join(sorted({r.get('scheduling', 'not recorded') for r in runs}))} (bench/priority.sh raises the autogroup's and the process's nice; at nice 0 other sessions share the cores equally)")
print(f"- memory cgroup: {cg_kind}, no swap; disk store directory {dirname}; runs alternate process by process (A B A B) within a sitting")
print("- step time = median of a run's steps after the first (the only step when a run has one); peak RSS from GNU time (%M); cgroup peak = the cgroup's max usage (includes page cache)")
print("- disk I/O hidden = 1 - (time compute waited for layers on disk) / (time the copy stream spent in disk I/O)")
print()
print("| run | memory limit | exit | peak RSS | cgroup peak | step ms (median, per run) | vs keep | disk written/step | disk read/step | disk I/O ms | disk wait ms (exposed) | disk I/O hidden | load at end | commit |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name in dict.fromkeys(r["name"] for r in runs):
    rs = g(name)
    step = med([r["step_ms_median"] for r in rs])
    io = med([r["disk_io_ms"] for r in rs]); wait = med([r["disk_wait_ms"] for r in rs])
    hidden = "n/a" if io in (None, 0) or wait is None else f"{max(0.0, 1 - wait / io) * 100:.0f}%"
    per_run = ", ".join(ms(r["step_ms_median"]) for r in rs)
    ratio = "n/a" if step is None or keep_ms is None else f"{step / keep_ms:.2f}x"
    peaks = ", ".join(mib(r["peak_rss_bytes"]) for r in rs)
    cgp = ", ".join(mib(int(r["cgroup_peak"])) if str(r["cgroup_peak"]).isdigit() else str(r["cgroup_peak"]) for r in rs)
    exits = ", ".join(str(r["rc"]) for r in rs)
    loads = "; ".join(r.get("load", "?") for r in rs)
    commits = ", ".join(dict.fromkeys(r.get("commit", "?") for r in rs))
    print(f"| {name} | {rs[0].get('limit') or 'none'} | {exits} | {peaks} | {cgp} | {ms(step)} ({per_run}) | {ratio} | "
          f"{mib(med([r['disk_written_bytes'] for r in rs]))} | {mib(med([r['disk_read_bytes'] for r in rs]))} | {ms(io)} | {ms(wait)} | {hidden} | {loads} | {commits} |")
PY
{
  cat "$report.tmp"
  echo
  echo "Commands (bench/run-disk-tier.sh $orig_args, possibly in several sittings):"
  echo
  "$python" -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l); print("    " + ("[cgroup %s] " % r["limit"] if r.get("limit") else "") + r.get("command", "?"))' "$results"
} >"$report.tmp2"
mv "$report.tmp2" "$report"; rm -f "$report.tmp"
cat "$report"
echo "wrote $report" >&2
