#!/usr/bin/env bash
# Runs the CPU benchmarks side by side with their baselines and writes the tables to
# benchmarks/<machine>/. Needs Debian's libopenblas0 (matmul baseline) and python3-torch
# (GPT-2 baseline): apt-get install -y libopenblas0 python3-torch
# Usage: bench/run-cpu.sh [machine-name] [benchmark ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
machine=${1:-amd-epyc-zen5-2core}
shift || true
out=benchmarks/$machine
mkdir -p "$out"
dotnet build bench/Memo.Benchmarks -c Release -o artifacts/bench >/dev/null
run() { echo "== $*" >&2; artifacts/bench/Memo.Benchmarks "$@"; }
want() { [ $# -eq 0 ] || [[ " ${selected} " == *" $1 "* ]]; }
selected="$*"
uptime >&2
if [ -z "$selected" ] || want matmul; then run matmul --threads 2 --out "$out/matmul.md"; fi
if [ -z "$selected" ] || want gpt2; then run gpt2 --threads 2 --out "$out/gpt2-step.md"; fi
if [ -z "$selected" ] || want policies; then run policies --out "$out/policies.md"; fi
