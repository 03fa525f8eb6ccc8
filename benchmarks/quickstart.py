"""The README's quickstart figures and transcripts: ``hwnas quickstart`` run as a user runs it.

Runs the command twice in fresh directories — reusing the shipped profile where this machine
matches it (it is then calibrated here first), and with ``--no-reuse-shipped`` (a quick profile of
its own) — through the real entry point, records each transcript, its wall time, the chosen subnet,
whether the budget was met as measured and whether the bundle verified, and the machine's load.
Writes ``results/quickstart.{json,md}``; the README quotes these files.

    python benchmarks/quickstart.py [--runs reuse-shipped own-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(args: list[str], workdir: Path) -> dict:
    env = {**os.environ, "COLUMNS": "110"}
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", "quickstart", *args], capture_output=True, text=True,
                       cwd=workdir, env=env)
    wall = time.time() - t0
    summary = {}
    qs = workdir / "runs" / "quickstart" / "quickstart.json"
    if qs.is_file():
        summary = json.loads(qs.read_text())
    return {"args": args, "returncode": p.returncode, "wall_s": wall, "transcript": p.stdout,
            "stderr_tail": p.stderr[-2000:], "summary": summary}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--runs", nargs="*", default=["reuse-shipped", "own-profile"],
                    help="Which runs (reuse-shipped: the default command; own-profile: --no-reuse-shipped).")
    args = ap.parse_args(argv)
    from hwnas.devices.base import host_facts

    runs = {}
    for name, extra in (("reuse-shipped", []), ("own-profile", ["--no-reuse-shipped"])):
        if name not in args.runs:
            continue
        with tempfile.TemporaryDirectory(prefix="hwnas-qs-") as tmp:
            load = os.getloadavg()
            r = run_once(extra, Path(tmp))
            r["loadavg_before"] = load
            runs[name] = r
            s = r["summary"]
            print(f"{name}: exit {r['returncode']}, {r['wall_s'] / 60:.1f} min; {s.get('profile')}; chosen "
                  f"{s.get('arch')}; budget met as measured {s.get('meets_budget_measured')}; verified "
                  f"{s.get('verified')}", flush=True)
    res = {"host": host_facts(), "runs": runs}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "quickstart.json").write_text(json.dumps(res, indent=1, default=str))
    md = [f"# hwnas quickstart on {res['host'].get('cpu')} ({', '.join(res['host'].get('isa', []))})", ""]
    for name, r in runs.items():
        md += [f"## {name}: `hwnas quickstart {' '.join(r['args'])}` — {r['wall_s'] / 60:.1f} min, exit "
               f"{r['returncode']}, load average before {r['loadavg_before'][0]:.2f}", "", "```console",
               r["transcript"].rstrip(), "```", ""]
    (args.results / "quickstart.md").write_text("\n".join(md))
    return res


if __name__ == "__main__":
    main()
