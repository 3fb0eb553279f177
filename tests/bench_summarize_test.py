#!/usr/bin/env python3
"""bench/summarize.py on well-formed and hostile logs (run by CTest as Bench.summarize when python3 exists)."""
import os
import subprocess
import sys
import tempfile

script = sys.argv[1]


def run(content: bytes):
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as f:
        f.write(content)
        path = f.name
    try:
        return subprocess.run([sys.executable, script, path], capture_output=True, text=True)
    finally:
        os.unlink(path)


def check(cond, what):
    if not cond:
        sys.exit("FAILED: " + what)


# two rounds: per-round ratios 200/100 = 2 and 300/100 = 3 for the step, 50/100 and 150/100 for the GEMM
good = b"""# torch 1.13
# round 1 10:00:00 load 0.0
dgm step 100.0 ms
torch step 200.0 ms
dgm gemm 50.0 GFLOP/s # 25% of peak
torch gemm 100.0 GFLOP/s
# round 2 10:01:00 load 0.0
dgm step 100.0 ms
torch step 300.0 ms
dgm gemm 150.0 GFLOP/s
torch gemm 100.0 GFLOP/s
"""
r = run(good)
check(r.returncode == 0, f"a good log exits 0 (got {r.returncode}: {r.stderr})")
rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line and not line.startswith(("#", "workload"))}
check(rows["step"][2:7] == ["100.0", "250.0", "2.50", "2.00", "3.00"], f"step row: {rows.get('step')}")
check(rows["gemm"][2:7] == ["100.0", "100.0", "1.00", "0.50", "1.50"], f"gemm row: {rows.get('gemm')}")

# hostile: binary bytes, lines before any round, too few fields, non-numbers, zero, negative, nan, inf
hostile = bytes(range(256)) + b"""
dgm step 5 ms
# round 1
dgm step
dgm step abc ms
dgm step 0 ms
torch step -3 ms
dgm gemm nan GFLOP/s
torch gemm inf GFLOP/s
\xff\xfe garbage \x00 line
"""
r = run(hostile)
check(r.returncode == 0, f"a hostile log exits 0 with no rows (got {r.returncode}: {r.stderr})")
check("Traceback" not in r.stderr, "no traceback on a hostile log")
check(not any(line.startswith(("step", "gemm")) for line in r.stdout.splitlines()), f"nothing usable, no rows: {r.stdout}")

# a missing file: one line naming it, exit 1
r = subprocess.run([sys.executable, script, "/nonexistent/rounds.log"], capture_output=True, text=True)
check(r.returncode == 1 and "cannot read /nonexistent/rounds.log" in r.stderr and "Traceback" not in r.stderr,
      f"missing file: {r.returncode} {r.stderr}")
print("ok")
