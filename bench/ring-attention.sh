#!/usr/bin/env bash
# Ring attention against the single-process kernels: llama-small's attention at T = 8K, 16K, 32K, one
# process with 2 threads vs 2 MPI ranks with 1 thread each, interleaved. Needs MPICH (apt-get install mpich).
# Usage: bench/ring-attention.sh [machine-name] [pairs] [repetitions per run] [seqs, comma-separated]
set -euo pipefail
cd "$(dirname "$0")/.."
machine=${1:-amd-epyc-zen5-2core}
pairs=${2:-3}
reps=${3:-3}
seqs=${4:-8192,16384,32768}
out=benchmarks/$machine
mkdir -p "$out"
dotnet build bench/Memo.Distributed.Bench -c Release -o artifacts/ring-bench >/dev/null
uptime >&2
dotnet artifacts/ring-bench/Memo.Distributed.Bench.dll driver --seqs "$seqs" --pairs "$pairs" --reps "$reps" --out "$out/ring-attention.md"
