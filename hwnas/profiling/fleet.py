"""Profiling on boards of a cluster: one model per board at a time, one profile, who measured what.

:func:`run_fleet_profile` measures what :func:`~hwnas.profiling.profiler.plan` lists on every live
board of a :class:`~hwnas.devices.remote.RemoteDevice` at once. Each board gets its own
:class:`~hwnas.profiling.session.MeasureSession`: its rows are its own reference ratios × the
profile's canonical reference latencies — normalised to the board's own reference, so a board that
runs uniformly slower or faster (clock, cooling) lands on the same scale — and its session record
names the board (``sessions[i]["board"]``, with the board's host facts). A row's ``session`` column
therefore says which board measured it (:func:`row_boards`); the table schema is unchanged.

A board that dies loses only the row it was measuring: the row goes back to the queue and another
board measures it. With no board left the run stops with a :class:`~hwnas.errors.ProfileError`;
every stored row stays (the journal), and re-running resumes.

Boards of one kind are checked against each other, not averaged: the ``repeat`` rows (reference
subnets measured again at the end) are given to a board other than the one that measured them
first where one is free, and :func:`agreement` compares the pairs (see :data:`NOISE_FLOOR`).
:func:`measure_archs` is the closed loop's parallel measurement.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, ProfileError
from hwnas.profiles.profile import DeviceProfile
from hwnas.profiles.schema import ProfileRow, model_row_key
from hwnas.types import ArchConfig, Progress

NOISE_FLOOR = 0.05
"""Median signed difference of the normalised latency of the same subnets measured on two boards
beyond which they are reported as disagreeing. The reference-normalised figure repeats on one
machine with a median deviation of 1.4–2.8 % and every pair within ±10 % (the project's
measurement notes): 5 % is about twice that floor."""
MIN_PAIRS = 2
"""Cross-board pairs needed before two boards are judged."""


class _Fleet:
    """Shared state of one fleet run: the queue, the profile lock, who measured which row."""

    def __init__(self, prof: DeviceProfile, tasks: list, progress: Progress | None, total: float, done: float) -> None:
        self.prof, self.queue, self.progress, self.total, self.done = prof, deque(tasks), progress, total, done
        self.lock = threading.Lock()  # the profile (one writer), the queue, the counters
        self.build_lock = threading.Lock()  # builders (torch's exporter) run one at a time
        self.first_by: dict[str, str] = {}  # arch key of a repeat-0 row → board that measured it
        self.measured: list[dict[str, Any]] = []
        self.lost: list[dict[str, str]] = []
        self.errors: list[BaseException] = []

    def take(self, board: str):
        """The next task for ``board``: a repeat is given to a board other than its first measurer when it can."""
        with self.lock:
            for i, t in enumerate(self.queue):
                if getattr(t, "repeat", 0) and self.first_by.get(t.item.key()) == board and len(self.queue) > 1:
                    continue
                del self.queue[i]
                return t
            return self.queue.popleft() if self.queue else None


def _open_session(state: _Fleet, board, settings_kw: dict[str, Any], note: str, config: dict | None):
    from hwnas.profiling.session import MeasureSession

    with state.lock:  # the first session fixes the profile's canonical reference latencies
        s = MeasureSession(state.prof, board, note=f"{note}; board {board.board}".strip("; "), config=config,
                           **settings_kw)
        sessions = state.prof.sessions
        sessions[s.session_id] = {**sessions[s.session_id], "board": board.board}
        state.prof.update_meta(sessions=sessions)
    return s


def _worker(state: _Fleet, board, settings_kw: dict[str, Any], measure_task, note: str, config: dict | None,
            tmp: Path) -> None:
    from hwnas.devices.remote import BoardLostError

    task = None
    try:
        session = _open_session(state, board, settings_kw, note, config)
        while True:
            task = state.take(board.board)
            if task is None:
                return
            t0 = time.perf_counter()
            row = measure_task(session, task, tmp / board.board, state.build_lock)
            with state.lock:
                state.prof.add_row(row)
                if row.table == "models" and not row.identity.get("repeat"):
                    state.first_by[row.identity["arch_key"]] = board.board
                state.measured.append({"row_key": row.key, "board": board.board, "task": task,
                                       "seconds": time.perf_counter() - t0, "unstable": bool(row.derived["unstable"])})
                state.done += 8.0 if row.table == "models" else 1.0
                if state.progress:
                    state.progress(f"{board.board}: {_label(task)}", state.done, state.total)
            task = None
    except BoardLostError as exc:
        with state.lock:
            if task is not None:
                state.queue.appendleft(task)  # another board measures it
            state.lost.append({"board": board.board, "why": str(exc)})
    except BaseException as exc:  # anything else stops the run, after the other boards finish their row
        with state.lock:
            if task is not None:
                state.queue.appendleft(task)
            state.errors.append(exc)
            state.queue.clear()


def _label(task) -> str:
    from hwnas.profiling.profiler import _describe

    return _describe(task) if hasattr(task, "table") else task.to_str()


def fan_out(prof: DeviceProfile, device, tasks: list, measure_task, settings_kw: dict[str, Any],
            progress: Progress | None = None, total: float = 0.0, done: float = 0.0, note: str = "",
            config: dict | None = None, workdir: str | Path | None = None) -> _Fleet:
    """Run ``measure_task(session, task, folder, build_lock) -> ProfileRow`` for every task, one board per
    thread; ``prof`` must be open for writing. Raises ProfileError when boards remain lost with work left."""
    boards = device.live() if hasattr(device, "live") else [device]
    if not boards:
        raise ProfileError(f"No live board of '{device.name}'.")
    state = _Fleet(prof, tasks, progress, total, done)
    models = prof.models_df()
    if len(models):
        firsts = models.assign(board=_boards_for(prof, models))
        state.first_by.update(dict(zip(firsts.loc[firsts["repeat"] == 0, "arch_key"],
                                       firsts.loc[firsts["repeat"] == 0, "board"])))
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-fleet-", dir=workdir))
    try:
        threads = [threading.Thread(target=_worker, args=(state, b, settings_kw, measure_task, note, config, tmp),
                                    name=f"hwnas-board-{b.board}", daemon=True) for b in boards]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for lost in state.lost:
        for b in boards:
            if b.board == lost["board"] and hasattr(device, "drop"):
                device.drop(b)
    if state.errors:
        raise state.errors[0]
    if state.queue:
        lost = ", ".join(x["board"] for x in state.lost)
        raise ProfileError(f"Every board of '{device.name}' was lost ({lost}) with {len(state.queue)} row(s) left; "
                           f"the {len(state.measured)} measured in this run are stored: re-run to resume.")
    return state


def _profile_task(settings, space: str, build_model, build_layer):
    from hwnas.profiling.profiler import built, model_identity, op_identity, remove_models

    def measure(session, t, folder: Path, build_lock):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "model.onnx"
        dev_id = session.prof.device_id
        with build_lock:
            model = built((build_layer if t.table == "ops" else build_model)(t.item, path), path)
        if t.table == "ops":
            row = session.row("ops", op_identity(t.item, space, dev_id), model, settings.op_timing, energy=False)
        else:
            row = session.row("models", model_identity(t.item, t.kind, t.repeat, dev_id), model,
                              settings.model_timing, energy=settings.energy)
        remove_models(path, model)
        return row

    return measure


def run_fleet_profile(prof: DeviceProfile, device, settings, build_model, build_layer,
                      progress: Progress | None = None, workdir: str | Path | None = None, note: str = "",
                      config: dict | None = None) -> dict[str, Any]:
    """:func:`~hwnas.profiling.profiler.run_profile` fanned out over the device's boards. Returns the same
    counts plus ``boards`` (rows per board), ``lost`` boards and the boards' ``agreement``."""
    from hwnas.profiling.profiler import _units, plan
    from hwnas.profiles.quality import summarize

    if settings.ops and build_layer is None:
        raise ConfigError("The block table needs a layer builder (build_layer), or pass ops=False.")
    t_start = time.perf_counter()
    with prof.writing("profiling"):
        tasks = plan(prof, settings)
        prof.register_space(settings.space, {
            **settings.to_meta(), "op_keys": [t.item.key() for t in tasks if t.table == "ops"],
            "reference_archs": [t.item.to_str() for t in tasks if t.kind == "reference"]})
        todo = [t for t in tasks if not prof.has_row(t.table, t.key)]
        total = _units(tasks)
        if progress:
            progress("starting the boards", total - _units(todo), total)
        kw = {"energy": settings.energy, "kernel_times": settings.kernel_times, "retries": settings.retries}
        state = fan_out(prof, device, todo, _profile_task(settings, settings.space, build_model, build_layer), kw,
                        progress, total, total - _units(todo), note, config, workdir) if todo else None
        done = state.measured if state else []
        prof.update_meta(quality=summarize(prof), fleet=fleet_summary(prof))
        quality, fleet = prof.meta["quality"], prof.meta["fleet"]
    per_board: dict[str, int] = {}
    for d in done:
        per_board[d["board"]] = per_board.get(d["board"], 0) + 1
    secs = {"ops": 0.0, "models": 0.0, "holdout": 0.0, "setup": 0.0}
    for d in done:
        secs["holdout" if d["task"].kind == "holdout" else d["task"].table] += d["seconds"]
    return {"planned": len(tasks), "already_stored": len(tasks) - len(todo), "measured": len(done),
            "unstable": sum(d["unstable"] for d in done), "seconds": secs, "wall_s": time.perf_counter() - t_start,
            "quality": quality, "boards": per_board, "lost": state.lost if state else [],
            "agreement": fleet["agreement"]}


def measure_archs(prof: DeviceProfile, archs: Sequence[ArchConfig], build_onnx, device, kind: str = "search",
                  timing=None, energy: bool = True, kernel_times: bool = True, retries: int = 2,
                  progress: Progress | None = None, workdir: str | Path | None = None) -> list[ProfileRow]:
    """:func:`~hwnas.profiling.profiler.measure_archs` with the archs measured in parallel, one per board."""
    from hwnas.profiling.profiler import _model_timing, built, model_identity, remove_models

    timing = timing or _model_timing()
    with prof.writing(f"measuring {kind} archs"):
        for sp in sorted({a.space for a in archs}):
            if sp not in prof.spaces:
                prof.register_space(sp, {"samples": 0, "reference_set": 0, "repeats": 0, "op_keys": [], "ops": False})
        todo = list(dict.fromkeys(a for a in archs if not prof.has_row("models", model_row_key(a.key(), prof.device_id))))

        def measure(session, a, folder: Path, build_lock):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "model.onnx"
            with build_lock:
                model = built(build_onnx(a, path), path)
            row = session.row("models", model_identity(a, kind, 0, prof.device_id), model, timing, energy)
            remove_models(path, model)
            return row

        if todo:
            kw = {"energy": energy, "kernel_times": kernel_times, "retries": retries}
            fan_out(prof, device, todo, measure, kw, progress, float(len(todo)) * 8, 0.0, f"measure_archs ({kind})",
                    None, workdir)
        prof.update_meta(fleet=fleet_summary(prof))
    stored = {r["row_key"]: r for r in prof.models_df().to_dict("records")}
    return [ProfileRow.from_record("models", stored[model_row_key(a.key(), prof.device_id)]) for a in archs]


# --------------------------------------------------------------------------- who measured what
def row_boards(prof: DeviceProfile, table: str = "models"):
    """The board that measured each row of ``table`` (a pandas Series aligned with ``models_df()`` /
    ``ops_df()``; an empty string for rows measured on this machine)."""
    import pandas as pd

    df = prof.models_df() if table == "models" else prof.ops_df()
    return pd.Series(_boards_for(prof, df), index=df.index, name="board", dtype=object)


def agreement(prof: DeviceProfile, space: str | None = None) -> list[dict[str, Any]]:
    """Per pair of boards: the same subnets' normalised latency measured on each (first vs repeat rows).

    ``median_dev`` is the median of (b − a) / a over the pairs (a positive figure: board ``b`` measures
    slower *after* normalisation — what normalising cannot cancel); ``within_10`` the share of pairs within
    ±10 %; ``disagree`` when at least :data:`MIN_PAIRS` pairs have ``|median_dev|`` > :data:`NOISE_FLOOR`.
    """
    import numpy as np

    df = prof.models_df(space)
    if not len(df):
        return []
    df = df.assign(board=_boards_for(prof, df))
    first = df[df["repeat"] == 0].drop_duplicates("arch_key").set_index("arch_key")
    rep = df[(df["repeat"] > 0) & df["arch_key"].isin(first.index)]
    pairs: dict[tuple[str, str], list[float]] = {}
    for _, r in rep.iterrows():
        a_board, b_board = first.loc[r["arch_key"], "board"], r["board"]
        if not a_board or not b_board or a_board == b_board:
            continue
        a_ms, b_ms = float(first.loc[r["arch_key"], "latency_ms"]), float(r["latency_ms"])
        if a_board > b_board:
            a_board, b_board, a_ms, b_ms = b_board, a_board, b_ms, a_ms
        pairs.setdefault((a_board, b_board), []).append((b_ms - a_ms) / a_ms)
    out = []
    for (a, b), devs in sorted(pairs.items()):
        d = np.asarray(devs)
        med = float(np.median(d))
        out.append({"boards": [a, b], "n_pairs": int(d.size), "median_dev": med,
                    "within_10": float(np.mean(np.abs(d) <= 0.10)),
                    "disagree": bool(d.size >= MIN_PAIRS and abs(med) > NOISE_FLOOR), "noise_floor": NOISE_FLOOR})
    return out


def _boards_for(prof: DeviceProfile, df):
    import numpy as np

    if not len(df):
        return np.asarray([], dtype=object)
    by_session = {int(s.get("id", i)): s.get("board") or s.get("host", {}).get("board", "")
                  for i, s in enumerate(prof.sessions)}
    return df["session"].map(lambda s: by_session.get(int(s), "")).to_numpy()


def fleet_summary(prof: DeviceProfile) -> dict[str, Any]:
    """Rows per board, each board's reference speed against the canonical one, and :func:`agreement`."""
    boards: dict[str, dict[str, Any]] = {}
    for s in prof.sessions:
        b = s.get("board")
        if b:
            e = boards.setdefault(b, {"sessions": 0, "reference_vs_canonical": []})
            e["sessions"] += 1
            e["reference_vs_canonical"].append(float(s.get("drift_vs_canonical", 0.0)))
    for table in ("models", "ops"):
        for b, n in row_boards(prof, table).value_counts().items():
            if b:
                boards.setdefault(b, {"sessions": 0, "reference_vs_canonical": []})[f"{table}_rows"] = int(n)
    return {"boards": boards, "agreement": agreement(prof)}


def describe(result: dict[str, Any]) -> list[str]:
    """Human-readable lines about a fleet run: rows per board, lost boards, disagreements."""
    lines = []
    if result.get("boards"):
        lines.append("rows per board: " + ", ".join(f"{b} {n}" for b, n in sorted(result["boards"].items())))
    for lost in result.get("lost", []):
        lines.append(f"board {lost['board']} was lost; its unfinished row was measured again elsewhere")
    for a in result.get("agreement", []):
        verdict = "DISAGREE" if a["disagree"] else "agree"
        lines.append(f"boards {a['boards'][0]} / {a['boards'][1]} {verdict}: {a['boards'][1]} {a['median_dev']:+.1%} "
                     f"normalised (median of {a['n_pairs']} subnets measured on both; noise floor "
                     f"±{a['noise_floor']:.0%}); {a['within_10']:.0%} within ±10 %")
    return lines
