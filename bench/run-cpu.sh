#!/usr/bin/env bash
# Runs the CPU benchmarks side by side with their baselines and writes the tables to
# benchmarks/<machine>/, plus run-cpu.md: the date, the commands, the load average before and after,
# and the versions of what the baselines used.
#
# Baselines and what they need (installed with apt-get when missing and running as root; otherwise
# the script says what to install and stops):
#   matmul  OpenBLAS cblas_sgemm in-process              libopenblas0
#   gpt2    PyTorch (bench/pytorch/gpt2_step.py)          python3-torch, libopenblas0 (without it Debian's
#           PyTorch calls the reference BLAS, over 100 s a step), python3-threadpoolctl (reports the BLAS)
# Both baselines run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (forcing a core type such as
# Haswell halves OpenBLAS on AVX-512 machines); Memo's own runs keep the caller's environment.
# PyTorch runs with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent huge pages for its buffers, as
# Memo's arena has them). Memo and each baseline alternate A B A B; tables give medians and spread.
#
# Usage: bench/run-cpu.sh [machine-name] [benchmark ...]   benchmarks: matmul gpt2 policies (default: all)
#        GPT2_ROUNDS=5 MATMUL_REPS=5 bench/run-cpu.sh ...  (rounds of the alternation)
set -euo pipefail
cd "$(dirname "$0")/.."
machine=${1:-amd-epyc-zen5-2core}
shift || true
selected="$*"
want() { [ -z "$selected" ] || [[ " ${selected} " == *" $1 "* ]]; }
out=benchmarks/$machine
mkdir -p "$out"
python=/usr/bin/python3

need=()
if want matmul || want gpt2; then need+=(libopenblas0); fi
if want gpt2; then need+=(python3-torch python3-threadpoolctl); fi
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]}" >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y "${missing[@]}" >&2 ||
      { apt-get update >&2 && apt-get -o DPkg::Lock::Timeout=600 install -y "${missing[@]}" >&2; }
  else
    echo "run-cpu.sh: the baselines need ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root" >&2
    exit 2
  fi
fi

dotnet build bench/Memo.Benchmarks -c Release -o artifacts/bench >/dev/null
log=$out/run-cpu.md
{
  echo "# bench/run-cpu.sh $machine $selected"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host $(hostname); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared; the tables repeat it)"
  echo "- packages: $(dpkg-query -W -f='${Package} ${Version}; ' libopenblas0 libopenblas0-pthread python3-torch python3-threadpoolctl 2>/dev/null | sed 's/; $//')"
  echo "- libblas.so.3 points to: $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)"
  echo "- environment for Memo: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-unset}; for the baselines both unset"
  echo "- scheduling: $(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup'), process nice $(nice) (bench/priority.sh raises both; nice 0 means other sessions shared the cores equally)"
  echo "- transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
  echo
  echo "Commands:"
  echo
} >"$log"
run() {
  echo "    $*" >>"$log"
  echo "== $*" >&2
  "$@"
}
baseline_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
if want matmul; then
  run "${baseline_env[@]}" artifacts/bench/Memo.Benchmarks matmul --threads 2 --reps "${MATMUL_REPS:-5}" --out "$out/matmul.md"
fi
if want gpt2; then
  # PyTorch gets its environment (huge pages, OpenBLAS variables unset) from the benchmark itself.
  run artifacts/bench/Memo.Benchmarks gpt2 --threads 2 --rounds "${GPT2_ROUNDS:-5}" --python "$python" --out "$out/gpt2-step.md"
fi
if want policies; then run artifacts/bench/Memo.Benchmarks policies --out "$out/policies.md"; fi
echo >>"$log"
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"
echo "wrote $log" >&2
