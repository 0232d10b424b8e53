"""Benchmark KokoroChat loading: cold (no cache: JSON parse + Parquet write) and warm (cache hit).

Targets on the project's 2-core machine: cold <= 2 s, warm <= 0.5 s (a plain json.load loop over
the 6,589 files takes about 3.3 s there). Prints the median of several runs of each; each run is
in a fresh process so that nothing is warm in Python's memory, only in the OS page cache.

    python scripts/bench_load.py --data ../shared/data/kokorochat
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

RUN = r"""
import json, sys, time
t0 = time.perf_counter()
import kokoro_nb
t1 = time.perf_counter()
c = kokoro_nb.load_kokorochat(sys.argv[1], progress=False)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "from_cache": c.report.from_cache,
                  "dialogues": len(c), "utterances": len(c.utterances)}))
"""

BASELINE = r"""
import json, os, sys, time
d = os.path.join(sys.argv[1], "kokorochat_dialogues")
t = time.perf_counter()
for f in sorted(os.listdir(d)):
    with open(os.path.join(d, f), encoding="utf-8") as fh:
        json.load(fh)
print(json.dumps({"load": time.perf_counter() - t}))
"""


def _run(code: str, data: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code, data], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("KOKOROCHAT_DIR", "../shared/data/kokorochat"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cold, warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, KOKORO_CACHE_DIR=cache)
            r = _run(RUN, args.data, env)
            assert not r["from_cache"]
            cold.append(r["load"])
            r = _run(RUN, args.data, env)
            assert r["from_cache"]
            warm.append(r["load"])
    base = [_run(BASELINE, args.data, dict(os.environ))["load"] for _ in range(3)]
    med = statistics.median
    print(f"corpus: {r['dialogues']:,} dialogues, {r['utterances']:,} utterances; "
          f"{os.cpu_count()} CPUs; {args.repeat} runs each, fresh process per run")
    print(f"plain json.load loop : median {med(base):.2f} s")
    print(f"cold load (no cache) : median {med(cold):.2f} s  (min {min(cold):.2f})  target <= 2.0 s "
          f"{'OK' if med(cold) <= 2.0 else 'MISSED'}")
    print(f"warm load (Parquet)  : median {med(warm):.2f} s  (min {min(warm):.2f})  target <= 0.5 s "
          f"{'OK' if med(warm) <= 0.5 else 'MISSED'}")
    print(f"import kokoro_nb     : {r['import']:.2f} s (not counted above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
