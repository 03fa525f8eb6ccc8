"""Does a fleet of boards profile faster, and what does a remote measurement cost? (loopback Ray cluster)

Starts a Ray cluster on this machine's loopback addresses (:mod:`hwnas.devices.loopback`): a head
and two board nodes of one kind, each pinned to its own core (``taskset``). Then, in one run:

1. profiles the same plan (``--space``, ``--samples`` stratified subnets alternating with
   ``--holdout`` held-out ones, the reference set and repeats; no block table) once with one board
   (``onnxruntime-cpu@board-1``) and once with both (``onnxruntime-cpu@pair``), in the order
   ``--order``; the ONNX files are exported once beforehand and copied in (the builder is not what
   is measured). Prints both wall times and their ratio (target ≥ 1.7×), rows per board, and the
   accuracy of an end-to-end latency model (``--model``) fitted on each profile and scored on its
   held-out rows (target: unchanged);
2. the overhead of a remote measurement over a local one: wall time of ``Device.measure`` for a
   ~0.1 ms and a ~5 ms model (chosen by their local latency), local on this process vs on a board,
   median of ``--calls`` calls each, with the latency each side measured.

The machine is shared with the host process (Ray's head and this driver); with two cores the boards
take both, so the figures are a floor for real boards, which do not share the host's CPU.

    python benchmarks/fleet.py [--space ofa-mbv3-w1.0] [--samples 60] [--holdout 30] [--results DIR]
    python benchmarks/fleet.py --space tiny-mbv3 --samples 6 --holdout 4 --reference-set 2 --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def prebuilt(space: str, archs, folder: Path):
    """Export every arch once; the builder then copies the file (so both runs build at the same cost)."""
    from hwnas.pipeline.jobs import subnet_builder

    build, _ = subnet_builder(space)
    folder.mkdir(parents=True, exist_ok=True)
    for a in archs:
        p = folder / f"{a.key()}.onnx"
        if not p.exists():
            build(a, p)
    return lambda arch, path: shutil.copyfile(folder / f"{arch.key()}.onnx", path)


def profile_once(out: Path, device: str, args, build, address: str) -> dict:
    from hwnas.devices import get_device
    from hwnas.profiling.fleet import run_fleet_profile
    from hwnas.profiling.profiler import ProfileSettings, open_or_create, smoke_timings

    dev = get_device(device, cluster=address)
    try:
        prof, _ = open_or_create(out, device, dev)
        ps = ProfileSettings(space=args.space, samples=args.samples, reference_set=args.reference_set,
                             repeats=args.repeats, holdout=args.holdout, ops=False, seed=args.seed,
                             **(smoke_timings() if args.quick else {}))
        t0 = time.perf_counter()
        r = run_fleet_profile(prof, dev, ps, build, None)
        r["wall_s"] = time.perf_counter() - t0
    finally:
        dev.close()
    return r


def model_accuracy(out: Path, name: str) -> dict:
    from hwnas.latency_models.metrics import evaluate_models
    from hwnas.profiles import DeviceProfile

    res = evaluate_models(DeviceProfile.open(out), [name])
    m = res["models"][name]
    return {"protocol": res["protocol"], **{k: m.get(k) for k in ("within_5", "within_10", "kendall_tau", "mape",
                                                                    "error") if k in m}}


def overhead(address: str, space: str, calls: int, quick: bool, folder: Path) -> list[dict]:
    """Wall time of one measure() call, local (this process) vs on board-1, for a ~0.1 ms and a ~5 ms model,
    and the part of the remote call spent outside the board's own work (``transport_ms``)."""
    import numpy as np

    from hwnas.devices import get_device
    from hwnas.devices.timing import TimingConfig
    from hwnas.pipeline.jobs import subnet_builder
    from hwnas.supernet.spaces import get_space

    timing = TimingConfig.quick() if quick else TimingConfig()
    local = get_device("onnxruntime-cpu")
    from hwnas.devices.reference import REFERENCES, reference_onnx

    candidates = [(local.measure(reference_onnx(n), TimingConfig.quick(), reference="none").stats.median_ms,
                   reference_onnx(n)) for n in REFERENCES]
    for sp in ("tiny-mbv3", space):
        s = get_space(sp)
        build, _ = subnet_builder(sp)
        rng = np.random.default_rng(1)
        for i, a in enumerate([s.min_arch(), s.max_arch()] + [s.sample(rng) for _ in range(4)]):
            p = folder / f"{sp}-{i}.onnx"
            build(a, p)
            candidates.append((local.measure(p, TimingConfig.quick(), reference="none").stats.median_ms, p))
    out = []
    remote = get_device("onnxruntime-cpu@board-1", cluster=address)
    try:
        for target in (0.1, 5.0):
            ms, path = min(candidates, key=lambda c: abs(np.log(c[0] / target)))
            row = {"target_ms": target, "model_ms": ms, "model": path.name}
            for side, dev in (("local", local), ("remote", remote)):
                dev.measure(path, timing)  # first call: loading, and for the board the model's bytes
                walls, meds, board = [], [], []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    m = dev.measure(path, timing)
                    walls.append(time.perf_counter() - t0)
                    meds.append(m.stats.median_ms)
                    board.append(m.extra.get("board_s", float("nan")))
                row[side] = {"call_s": float(np.median(walls)), "median_ms": float(np.median(meds))}
                if side == "remote":  # what the call cost beyond the board's own work: transport, JSON, Ray
                    row["transport_ms"] = float(np.median(np.asarray(walls) - np.asarray(board))) * 1e3
            row["overhead_s"] = row["remote"]["call_s"] - row["local"]["call_s"]
            row["overhead_rel"] = row["remote"]["call_s"] / row["local"]["call_s"] - 1.0
            out.append(row)
    finally:
        remote.close()
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="ofa-mbv3-w1.0")
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--holdout", type=int, default=30)
    ap.add_argument("--reference-set", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="e2e", help="Latency model scored on the held-out rows.")
    ap.add_argument("--order", default="one,two", help="Which run goes first: one,two or two,one.")
    ap.add_argument("--calls", type=int, default=5, help="measure() calls per side for the overhead figures.")
    ap.add_argument("--quick", action="store_true", help="Smoke-test timings (validation of this script only).")
    ap.add_argument("--work", type=Path, default=None, help="Working folder (default: a new temp dir).")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.devices import get_device
    from hwnas.devices.base import host_facts
    from hwnas.devices.cluster import use
    from hwnas.devices.loopback import LoopbackCluster
    from hwnas.pipeline.jobs import quiet_torch
    from hwnas.profiling.profiler import ProfileSettings, plan
    from hwnas.profiles import DeviceProfile

    work = args.work or Path(tempfile.mkdtemp(prefix="hwnas-fleet-bench-"))
    quiet_torch()
    cluster = LoopbackCluster(work / "cluster")
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": cluster.token})
    load_before = os.getloadavg()
    try:
        cluster.start_head()
        cores = os.sched_getaffinity(0)
        pins = sorted(cores)[:2] if len(cores) >= 2 else [None, None]
        for i, core in enumerate(pins, 1):
            cluster.add_board(f"board-{i}", "pair", None if core is None else str(core))
        cluster.wait_for(["board-1", "board-2"])
        use(cluster.address)
        # the plan, exported once
        probe = DeviceProfile.create(work / "plan", "plan", get_device("onnxruntime-cpu").spec(), {})
        tasks = plan(probe, ProfileSettings(space=args.space, samples=args.samples, reference_set=args.reference_set,
                                            repeats=args.repeats, holdout=args.holdout, ops=False, seed=args.seed))
        build = prebuilt(args.space, list({t.item.key(): t.item for t in tasks}.values()), work / "onnx")
        runs = {}
        for which in args.order.split(","):
            device = "onnxruntime-cpu@board-1" if which == "one" else "onnxruntime-cpu@pair"
            out = work / f"profile-{which}"
            t0 = time.time()
            r = profile_once(out, device, args, build, cluster.address)
            runs[which] = {"device": device, "wall_s": r["wall_s"], "measured": r["measured"], "boards": r["boards"],
                           "agreement": r["agreement"], "unstable": r["unstable"],
                           "repeatability": r["quality"]["spaces"][args.space]["repeatability"],
                           "model": model_accuracy(out, args.model), "started": t0}
            print(f"{which} board(s): {r['measured']} rows in {r['wall_s']:.1f} s; rows per board {r['boards']}",
                  flush=True)
        ov = overhead(cluster.address, args.space, args.calls, args.quick, work / "overhead")
    finally:
        try:
            import ray

            ray.shutdown()
        finally:
            cluster.stop()
    load_after = os.getloadavg()
    ratio = runs["one"]["wall_s"] / runs["two"]["wall_s"]
    result = {"space": args.space, "host": host_facts(), "settings": vars(args) | {"work": str(work),
                                                                                    "results": str(args.results)},
              "runs": runs, "speedup": ratio, "overhead": ov, "loadavg_before": load_before,
              "loadavg_after": load_after, "cores_pinned": pins}
    lines = [f"# Fleet profiling: {args.space}, onnxruntime-cpu, boards on a loopback Ray cluster",
             f"({result['host']['cpu']}, {os.cpu_count()} logical cores; boards pinned to cores {pins}; the host process "
             "and Ray's head share them)", "",
             "| boards | rows | wall s | rows per board | unstable | "
             f"{args.model} within ±10 % (held out) | Kendall τ |", "|---|---|---|---|---|---|---|"]
    for which in ("one", "two"):
        r = runs[which]
        m = r["model"]
        acc = (f"{m['within_10']:.0%} | {m['kendall_tau']:.3f}" if "within_10" in m
               else f"not scored: {m.get('error', '?')[:80]} | -")
        lines.append(f"| {which} | {r['measured']} | {r['wall_s']:.1f} | {r['boards']} | {r['unstable']} | {acc} |")
    lines += ["", f"- speed-up with two boards: **{ratio:.2f}×** (target ≥ 1.7×)"]
    for a in runs["two"]["agreement"]:
        lines.append(f"- boards {a['boards']}: {a['median_dev']:+.1%} normalised over {a['n_pairs']} subnets measured "
                     f"on both ({'disagree' if a['disagree'] else 'agree'}, noise floor ±{a['noise_floor']:.0%})")
    lines += ["", "| model | latency local ms | on the board ms | measure() local s | on the board s | difference | "
              "transport per call |", "|---|---|---|---|---|---|---|"]
    for o in ov:
        lines.append(f"| ~{o['target_ms']} ms ({o['model_ms']:.3f} ms) | {o['local']['median_ms']:.3f} | "
                     f"{o['remote']['median_ms']:.3f} | {o['local']['call_s']:.3f} | {o['remote']['call_s']:.3f} | "
                     f"{o['overhead_s'] * 1e3:+.0f} ms ({o['overhead_rel']:+.0%}) | {o['transport_ms']:.1f} ms |")
    lines += ["", "(local: this process, not pinned; on the board: board-1's pinned core, which it shares with its "
              "own Ray processes; transport = the remote call's wall time minus the board's own time for it)"]
    lines += ["", f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"]
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"fleet_{args.space}" + ("_quick" if args.quick else "") + ("" if args.order == "one,two" else "_two-first")
    (args.results / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.results / f"{stem}.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
