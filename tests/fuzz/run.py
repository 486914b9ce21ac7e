#!/usr/bin/python3
"""Runs each libFuzzer target for N seconds from its seed corpus and reports
executions, corpus size and coverage; any crash fails the run (the crashing
input is left in build/fuzz/ as crash-<target>-*). Writes build/fuzz/results.json.

--jobs J runs J targets at a time (one core each): every target still gets
its N seconds, the stage takes about N * targets / J."""

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def fuzz_one(out, t, seconds, seed):
    corpus = out / f"corpus-{t}"
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = TOP / "tests/fuzz/corpus" / t
    r = subprocess.run([out / f"fuzz-{t}", f"-max_total_time={seconds}", "-print_final_stats=1",
                        "-max_len=131072" if t == "gpt" else "-max_len=8192", "-timeout=10",
                        f"-seed={seed}",
                        f"-artifact_prefix={out}/crash-{t}-", str(corpus), str(seeds)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", r.stderr, re.M))
    cov = re.findall(r"cov: (\d+) ft: (\d+)", r.stderr)
    res = {"executions": int(stats.get("number_of_executed_units", 0)),
           "execs_per_sec": int(stats.get("average_exec_per_sec", 0)),
           "corpus_files": sum(1 for _ in corpus.iterdir()),
           "coverage_edges": int(cov[-1][0]) if cov else 0, "seconds": seconds,
           "exit": r.returncode}
    line = (f"fuzz {t:9}: {res['executions']:>9} executions ({res['execs_per_sec']}/s), "
            f"{res['coverage_edges']} edges, corpus {res['corpus_files']}"
            + ("" if r.returncode == 0 else f"  FAILED (exit {r.returncode})"))
    if r.returncode != 0:
        line += "\n" + "\n".join(r.stderr.splitlines()[-40:])
    return t, res, line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(TOP / "build"))
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer's -seed (0: random)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets at a time (default: one per core)")
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    out = Path(a.build).resolve() / "fuzz"
    results, failed = {}, []
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        # Printed in target order; each target's lines together.
        for t, res, line in pool.map(lambda t: fuzz_one(out, t, a.seconds, a.seed), a.targets):
            results[t] = res
            print(line, flush=True)
            if res["exit"] != 0:
                failed.append(t)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
