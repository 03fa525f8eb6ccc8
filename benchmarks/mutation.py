"""Mutation check: do the tests fail when the behaviour they name breaks?

Each mutant is one deliberate one-line bug in a core module (the first eight are the ones a review
of the test suite applied by hand; the rest cover the other stages). For each, the repository is
copied to a temporary directory, the line is changed, and the tests that guard that behaviour run
there (``python -m pytest -x -q`` on the named files, the copy first on ``sys.path``). The copy is
the committed tree (``git archive HEAD``). A mutant
the tests do not catch *survived*. Prints every mutant's fate and the survival rate, and writes
``results/mutation.{json,md}``.

    python benchmarks/mutation.py [--only NAME ...]

``--only`` runs the named mutants and updates their rows in the results (the others keep theirs).
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

ROOT = Path(__file__).resolve().parent.parent

# name, file, original text, mutated text, test files that should catch it
MUTANTS = [
    ("hybrid-drops-learned-residual", "hwnas/latency_models/learned.py", "        return b * np.exp(r)",
     "        return b", ["tests/test_latency_models.py"]),
    ("journal-keeps-duplicates", "hwnas/profiles/journal.py",
     '    df = df.drop_duplicates("row_key", keep="first").reset_index(drop=True)', "    df = df.reset_index(drop=True)",
     ["tests/test_profile_format.py"]),
    ("bundle-ignores-file-hashes", "hwnas/exporting/bundle.py", "        elif file_sha256(p) != digest:",
     "        elif False:", ["tests/test_export.py"]),
    ("openvino-accepts-any-precision", "hwnas/devices/openvino_cpu.py",
     "    if want not in floats or (requested == \"fp32\" and other):", "    if False:",
     ["tests/test_backend_openvino_tvm.py"]),
    ("bundle-ignores-manifest-hash", "hwnas/exporting/bundle.py",
     "    if h.read_text().strip() != file_sha256(b / MANIFEST):", "    if False:", ["tests/test_export.py"]),
    ("unmeasured-budget-counts-as-met", "hwnas/searching/closed_loop.py",
     "    return all(m.get(n) is not None and m[n] <= b for n, b in budgets.items())",
     "    return all(m[n] <= b for n, b in budgets.items() if m.get(n) is not None)", ["tests/test_closed_loop.py"]),
    ("shipped-profile-writable", "hwnas/profiles/profile.py",
     "        return self.root.resolve().is_relative_to(SHIPPED_DIR.resolve())", "        return False",
     ["tests/test_latency_models.py"]),
    ("interleaving-mean-instead-of-median", "hwnas/devices/timing.py", "    med = float(np.median(a))",
     "    med = float(np.mean(a))", ["tests/test_devices.py"]),
    ("session-accepts-another-device", "hwnas/profiling/session.py", "        if spec.id() != prof.device_id:",
     "        if False:", ["tests/test_profile_run.py"]),
    ("policy-ignores-accuracy-budget", "hwnas/exporting/mixed.py",
     "    ok = [t for t in trials if fp32_acc - t.accuracy <= budget_pts]", "    ok = list(trials)",
     ["tests/test_export.py"]),
    ("latency-on-ignores-scale", "hwnas/types/measurement.py", "        return self.ref.ratio * base",
     "        return self.ref.ratio * self.ref.ref_median_ms", ["tests/test_profile_run.py", "tests/test_export.py"]),
    ("dataset-fits-any-space", "hwnas/datasets/__init__.py", "        ds.check_space(sp)", "        pass",
     ["tests/test_cli.py", "tests/test_datasets.py"]),
    ("profile-serves-any-space", "hwnas/profiles/profile.py",
     "        if space not in self.meta.get(\"spaces\", {}):", "        if False:",
     ["tests/test_latency_models.py", "tests/test_profile_format.py"]),
    ("arch-skips-validation", "hwnas/types/arch.py", "        ks, e = sp.validate(ks, e, d, r)",
     "        pass", ["tests/test_spaces.py"]),
    ("front-keeps-dominated", "hwnas/searching/front.py", "    idx = pool[non_dominated(Fmin[pool])]",
     "    idx = pool", ["tests/test_search.py"]),
    ("config-ignores-command-line", "hwnas/cli/__init__.py", "    return base.replace(**given) if given else base",
     "    return base", ["tests/test_configs.py"]),
    ("extract-drops-se", "hwnas/supernet/static.py",
     "            return x * F.hardsigmoid(self.fc.expand(F.relu(self.fc.reduce(y))))", "            return x",
     ["tests/test_supernet.py"]),
    ("bn-recalibration-skipped", "hwnas/supernet/evaluate.py", "        m.running_mean[:c] = s_mean / n",
     "        pass", ["tests/test_data_train.py", "tests/test_datasets.py"]),
    ("merge-keeps-source-scale", "hwnas/profiles/merge.py",
     "                n += int(dst.add_row(replace(row, latency_ms=lat, session=row.session + offset)))",
     "                n += int(dst.add_row(replace(row, session=row.session + offset)))", ["tests/test_profile_format.py"]),
    ("quantizer-ignores-policy", "hwnas/devices/onnxruntime_quant.py",
     "    exclude = [n for n in names if policy.precision_for(n) != \"int8\"]", "    exclude = []",
     ["tests/test_export.py"]),
    # the stages added with calibration, few-shot, precision profiles and the gain rule
    ("int8-profile-times-fp32", "hwnas/profiling/profiler.py",
     "    return Path(result) if isinstance(result, (str, Path)) else path", "    return path",
     ["tests/test_precision_profile.py"]),
    ("calibration-never-stale", "hwnas/profiling/calibration.py",
     "                and self.host == host_fingerprint(device.host_facts()) and self.age_h() < MAX_AGE_H)",
     "                )", ["tests/test_calibration.py"]),
    ("int8-calibration-times-fp32", "hwnas/pipeline/predictors.py",
     "        build = in_precision(device, subnet_builder(space, checkpoint, device.batch_size)[0])  # INT8: quantized",
     "        build = subnet_builder(space, checkpoint, device.batch_size)[0]", ["tests/test_calibration.py"]),
    ("gain-ignores-min-gain", "hwnas/exporting/gains.py", "        if (lo > 0 or hi < 0) and abs(mean) >= band:",
     "        if lo > 0 or hi < 0:", ["tests/test_gains.py"]),
    ("few-shot-stops-on-its-estimate", "hwnas/profiling/few_shot.py",
     "    return len(log_errors) >= n_min and error_upper_bound(log_errors) <= target",
     "    return float(np.mean(np.expm1(log_errors))) <= target", ["tests/test_calibration.py"]),
    ("batch-size-unchecked", "hwnas/exporting/build.py", "    if not 1 <= sizes[0] <= CALIBRATION_IMAGES:",
     "    if False:", ["tests/test_export.py"]),
    ("mixed-search-times-qdq-onnx", "hwnas/exporting/mixed.py",
     "        p = build(only(groups, names, other), workdir / label)  # the quantizer's own format (what is deployed)",
     "        p = build(only(groups, names, other), workdir / f\"{label}.onnx\")", ["tests/test_export.py"]),
    ("transfer-interval-ignores-source-error", "hwnas/latency_models/transfer.py",
     "            q = math.sqrt(q**2 + conformal_quantile(src, coverage) ** 2)", "            pass",
     ["tests/test_calibration.py"]),
]


def run_mutant(name: str, rel: str, old: str, new: str, tests: list[str], timeout: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hwnas-mutant-") as tmp:
        work = Path(tmp) / "repo"
        work.mkdir()
        # the committed tree (HEAD), so edits in progress never leak into a mutant
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        f = work / rel
        src = f.read_text()
        if src.count(old) != 1:
            return {"name": name, "status": "stale", "why": f"the original line occurs {src.count(old)} times in {rel}"}
        f.write_text(src.replace(old, new))
        env = {**os.environ, "PYTHONPATH": str(work)}
        t0 = time.time()
        try:
            r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                               cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"name": name, "status": "timeout", "seconds": timeout}
        tail = [ln for ln in r.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))][:2]
        return {"name": name, "file": rel, "tests": tests, "status": "killed" if r.returncode != 0 else "survived",
                "seconds": round(time.time() - t0, 1), "caught_by": tail}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="Mutant names to run (default: all).")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only is None or m[0] in args.only]
    rows = []
    for m in chosen:
        res = run_mutant(*m, timeout=args.timeout)
        rows.append(res)
        print(f"{res['status']:>8}  {res['name']}  ({res.get('seconds', '-')} s) {' '.join(res.get('caught_by', []))[:160]}",
              flush=True)
    if args.only is not None and (args.results / "mutation.json").is_file():
        # a partial run updates its mutants' rows in the full table (the others keep their last verdict)
        mine = {r["name"]: r for r in rows}
        old = json.loads((args.results / "mutation.json").read_text())["rows"]
        names = [m[0] for m in MUTANTS]
        kept = {r["name"]: r for r in old if r["name"] in names}
        kept.update(mine)
        rows = [kept[n] for n in names if n in kept]
    judged = [r for r in rows if r["status"] in ("killed", "survived")]
    survived = [r["name"] for r in judged if r["status"] == "survived"]
    out = {"mutants": len(rows), "judged": len(judged), "survived": survived,
           "survival_rate": len(survived) / len(judged) if judged else None, "rows": rows}
    print(f"\n{len(judged) - len(survived)} of {len(judged)} mutants killed; survival rate "
          f"{out['survival_rate']:.0%}" + (f" (survived: {', '.join(survived)})" if survived else ""))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "mutation.json").write_text(json.dumps(out, indent=1))
    md = ["# Mutation check (`python benchmarks/mutation.py`)", "", "| mutant | file | status | caught by |",
          "|---|---|---|---|"]
    md += [f"| {r['name']} | {r.get('file', '')} | {r['status']} | {'; '.join(r.get('caught_by', []))[:120]} |"
           for r in rows]
    md += ["", f"Survival rate: {out['survival_rate']:.0%} ({len(survived)} of {len(judged)})."]
    (args.results / "mutation.md").write_text("\n".join(md) + "\n")
    return out


if __name__ == "__main__":
    main()
