#!/usr/bin/env bash
# Runs a benchmark ahead of everything else on a shared machine: in a new session (so a scheduler
# autogroup of its own) whose autogroup nice is -19, at process nice -19 and best-effort I/O priority 0.
# Linux schedules autogroups fairly before it looks at process nice, so renicing the benchmark alone
# does not help while other sessions run builds; raising its autogroup does: the other work runs in
# the time the benchmark leaves. Needs root (a negative nice). The load average still counts the other
# work's runnable tasks; the results files record the autogroup the benchmark ran in.
#
# Usage: bench/priority.sh bench/run-disk-tier.sh --seq 32K ...
set -euo pipefail
if [ $# -eq 0 ]; then echo "priority.sh: give the benchmark command to run, e.g. bench/priority.sh bench/run-cpu.sh" >&2; exit 2; fi
if [ "$(id -u)" -ne 0 ]; then echo "priority.sh: raising the priority needs root; run as root or run the benchmark directly on an idle machine" >&2; exit 2; fi
if [ -z "${MEMO_PRIORITY_SESSION:-}" ]; then MEMO_PRIORITY_SESSION=1 exec setsid --wait "$0" "$@"; fi
echo -19 >/proc/self/autogroup
renice -n -19 -p $$ >/dev/null
exec ionice -c2 -n0 "$@"
