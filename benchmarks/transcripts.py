"""The README's transcripts of the three jobs, run as a user runs them, on this machine.

Runs, in a fresh directory and through the real entry point: a quick profile of this CPU
(``hwnas profile``), a latency model fitted and scored on its held-out rows (``fit``, ``evaluate``),
a search under a latency budget with the closed loop (``search``), an export with a searched
precision policy (``export``), its verification (``verify``), and ``predict`` with the shipped
profile used on this machine (calibrated here first). Records each command's transcript, exit code
and wall time and the machine's load, and writes ``results/transcripts.{json,md}`` — the README
quotes these files, so every transcript there names the machine it came from.

    python benchmarks/transcripts.py [--budget-ms 0.16] [--device onnxruntime-cpu,openvino-cpu]
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


def run(cmd: list[str], cwd: Path) -> dict:
    env = {**os.environ, "COLUMNS": "110"}
    load = os.getloadavg()[0]
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", *cmd], capture_output=True, text=True, cwd=cwd, env=env)
    r = {"cmd": "hwnas " + " ".join(cmd), "returncode": p.returncode, "wall_s": time.time() - t0,
         "loadavg_before": load, "transcript": p.stdout, "stderr_tail": p.stderr[-2000:]}
    print(f"{r['cmd']}: exit {p.returncode}, {r['wall_s']:.0f} s", flush=True)
    return r


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-ms", type=float, default=None,
                    help="Search budget (default: the median latency of the quick profile's subnets).")
    ap.add_argument("--device", default="onnxruntime-cpu,openvino-cpu",
                    help="Export device, or a list / auto to choose among by measurement.")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    from hwnas.devices.base import host_facts

    steps = []
    with tempfile.TemporaryDirectory(prefix="hwnas-jobs-") as tmp:
        cwd = Path(tmp)
        prof = "profiles/my-cpu"
        steps.append(run(["profile", "--space", "fmnist-mbv3", "--threads", "1", "--samples", "80", "--holdout", "40",
                          "--out", prof], cwd))
        steps.append(run(["fit", prof, "--space", "fmnist-mbv3", "--model", "hybrid"], cwd))
        steps.append(run(["evaluate", prof, "--space", "fmnist-mbv3"], cwd))
        budget = args.budget_ms
        if budget is None:
            import pandas as pd
            rows = pd.read_parquet(cwd / prof / "models.parquet")
            budget = round(float(rows.loc[rows["space"] == "fmnist-mbv3", "latency_ms"].median()), 3)
        steps.append(run(["search", "--space", "fmnist-mbv3", "--profile", prof, "--latency-budget-ms", str(budget),
                          "--out", "runs/fmnist"], cwd))
        steps.append(run(["export", "--run", "runs/fmnist", "--device", args.device, "--precision", "mixed",
                          "--max-accuracy-drop", "0.5", "--out", "bundles/fmnist"], cwd))
        steps.append(run(["verify", "bundles/fmnist"], cwd))
        shipped = sorted(p.name for p in (Path(__file__).resolve().parent.parent / "hwnas" / "data" / "profiles").iterdir())[0]
        steps.append(run(["predict", shipped, "--arch", "ofa-mbv3-w1.0/r224_k7e6-k7e6-k7e6-k7e6_k7e6-k7e6-k7e6-k7e6_k7e6-k7e6-k7e6-k7e6_k7e6-k7e6-k7e6-k7e6_k7e6-k7e6-k7e6-k7e6"], cwd))
    res = {"host": host_facts(), "budget_ms": budget, "steps": steps}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "transcripts.json").write_text(json.dumps(res, indent=1, default=str))
    md = [f"# The three jobs on {res['host'].get('cpu')} ({', '.join(res['host'].get('isa', []))})", ""]
    for s in steps:
        md += [f"`{s['cmd']}` — exit {s['returncode']}, {s['wall_s']:.0f} s, load average before "
               f"{s['loadavg_before']:.2f}", "", "```console", f"$ {s['cmd']}", s["transcript"].rstrip(), "```", ""]
    (args.results / "transcripts.md").write_text("\n".join(md))
    return res


if __name__ == "__main__":
    main()
