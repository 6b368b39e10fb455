#!/usr/bin/env python3
"""Writes a synthetic buffer trace (google/minimalloc CSV: id,lower,upper,size) of N buffers, for planner scaling runs.

Like one training iteration: time runs over 2N steps; 80% of the buffers are short-lived (1-16 steps, activations and
workspaces), 20% live long (log-uniform up to N/5 steps, saved activations and gradients); sizes are log-uniform from
64 B to 16 MiB in 64-byte units. Deterministic for a given seed.

    python3 bench/planner/gen-trace.py 1000000 > trace-1m.csv
"""
import math
import random
import sys


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rng = random.Random(seed)
    horizon = 2 * n
    out = sys.stdout
    out.write("id,lower,upper,size\n")
    lines = []
    for i in range(n):
        lower = rng.randrange(horizon)
        if rng.random() < 0.8:
            length = rng.randint(1, 16)
        else:
            length = int(math.exp(rng.uniform(0, math.log(max(2, n // 5)))))
        size = 64 * int(math.exp(rng.uniform(0, math.log(16 * 1024 * 1024 // 64))))
        lines.append(f"b{i},{lower},{lower + max(1, length)},{size}\n")
        if len(lines) == 10000:
            out.writelines(lines)
            lines.clear()
    out.writelines(lines)


if __name__ == "__main__":
    main()
