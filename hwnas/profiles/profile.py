"""``DeviceProfile``: read and write a device-profile directory (format in :mod:`hwnas.profiles.schema`).

Reading validates the directory (``device.json`` format and schema version, readable tables) and
refuses a foreign, corrupt, newer or older one with a message that says what to do. Writing
happens inside ``with prof.writing():`` which takes the directory's lock, appends rows through
the crash-safe journal and compacts the tables to Parquet on exit. Nothing is ever overwritten:
a row whose key is already stored is skipped, and ``device.json`` is only extended.

This module imports no runtime and no super-network: latency models read profiles through it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import ProfileError
from hwnas.fileio import atomic_write_json
from hwnas.profiles import journal
from hwnas.profiles.lock import ProfileLock
from hwnas.profiles.schema import (
    DEVICE_FILE,
    FORMAT,
    LOCK_FILE,
    PREDICTORS_DIR,
    SCHEMA_VERSION,
    TABLES,
    TARGETS,
    ProfileRow,
)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"
"""Where the profiles shipped with hwnas live (read-only in use)."""
from hwnas.types import DeviceSpec


class DeviceProfile:
    """A device profile directory. Use :meth:`open` or :meth:`create`, not the constructor."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = Path(root)
        self.meta = meta
        self._lock: ProfileLock | None = None
        self._keys: dict[str, set[str]] | None = None
        self._frames: dict[str, Any] = {}

    # ------------------------------------------------------------------ open / create
    @classmethod
    def open(cls, path: str | os.PathLike) -> DeviceProfile:
        """Open the profile at ``path``; a bare name that is no path here names a shipped profile."""
        root = Path(path)
        if not root.exists() and len(root.parts) == 1 and (SHIPPED_DIR / root.name / DEVICE_FILE).is_file():
            root = SHIPPED_DIR / root.name
        return cls(root, _read_meta(root))

    @classmethod
    def create(cls, path: str | os.PathLike, device_name: str, spec: DeviceSpec, host: dict[str, Any],
               device_options: dict[str, Any] | None = None) -> DeviceProfile:
        """Start a new profile in ``path`` (which must not exist, or be empty)."""
        import hwnas
        from hwnas.types import utc_now

        root = Path(path)
        if root.exists() and (not root.is_dir() or any(p.name != ".lock" for p in root.iterdir())):
            if (root / DEVICE_FILE).exists():
                raise ProfileError(f"'{root}' already holds a device profile: open it instead of creating one.")
            raise ProfileError(f"'{root}' exists and is not an empty directory: choose a new --out for the profile.")
        meta = {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "hwnas_version": hwnas.__version__,
            "created": utc_now(),
            "device": device_name, "device_options": dict(device_options or {}),
            "spec": spec.to_dict(), "spec_id": spec.id(), "host": host,
            "reference": {}, "sessions": [], "spaces": {}, "energy": {}, "memory": {}, "quality": {},
        }
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(root / DEVICE_FILE, meta)
        return cls(root, meta)

    # ------------------------------------------------------------------ what it is
    @property
    def spec(self) -> DeviceSpec:
        return DeviceSpec.from_dict(self.meta["spec"])

    @property
    def device_id(self) -> str:
        return self.meta["spec_id"]

    @property
    def device_name(self) -> str:
        return self.meta["device"]

    @property
    def device_options(self) -> dict[str, Any]:
        return dict(self.meta.get("device_options", {}))

    @property
    def host(self) -> dict[str, Any]:
        return dict(self.meta.get("host", {}))

    @property
    def spaces(self) -> list[str]:
        return sorted(self.meta.get("spaces", {}))

    def space_settings(self, space: str) -> dict[str, Any]:
        self.check_space(space)
        return dict(self.meta["spaces"][space])

    @property
    def reference_ms_by_name(self) -> dict[str, float]:
        """Canonical latency (ms) of each reference model: measured once, when the profile was
        created; every row's ``latency_ms`` is its reference ratio × this figure."""
        return {k: float(v) for k, v in self.meta.get("reference", {}).get("ms", {}).items()}

    @property
    def reference_ms(self) -> float:
        """The canonical latency of the profile's primary reference model (ms): multiply a new
        session's reference ratio by it to put a new measurement on this profile's scale."""
        ref = self.meta.get("reference", {})
        if not ref.get("ms"):
            raise ProfileError(f"Profile '{self.root}' has no reference latencies yet: it was never measured into.")
        return float(ref["ms"][ref["primary"]])

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return list(self.meta.get("sessions", []))

    def check_space(self, space: str) -> None:
        if space not in self.meta.get("spaces", {}):
            have = ", ".join(self.spaces) or "none"
            raise ProfileError(f"Profile '{self.root}' was not made for space '{space}' (it has: {have}). "
                               f"Add it with: hwnas profile --space {space} --out {self.root}")

    def check_target(self, target: str, space: str) -> str:
        """The column behind ``target``; error if unknown or never measured in this profile."""
        if target not in TARGETS:
            raise ProfileError(f"Unknown target '{target}'; choose one of {', '.join(TARGETS)}.")
        col = TARGETS[target]
        df = self.models_df(space)
        if col not in df.columns or df[col].notna().sum() == 0:
            why = ""
            if col == "energy_mj":
                why = f" (why: {self.meta.get('energy', {}).get('why') or 'no energy meter'})"
            raise ProfileError(f"Profile '{self.root}' has no '{col}' values for space '{space}'{why}.")
        return col

    # ------------------------------------------------------------------ tables
    def models_df(self, space: str | None = None, kinds: Sequence[str] | None = None):
        """End-to-end rows (pandas DataFrame), optionally one space and some kinds only."""
        df = self._table("models")
        if space is not None:
            df = df[df["space"] == space]
        if kinds is not None:
            df = df[df["kind"].isin(list(kinds))]
        return df.reset_index(drop=True)

    def ops_df(self, space: str | None = None):
        """Block/op rows. A layer measured for one space serves every space that has it, so
        ``space`` filters on the layer keys that space's settings list (see ``space_settings``)."""
        df = self._table("ops")
        if space is not None:
            keys = set(self.meta.get("spaces", {}).get(space, {}).get("op_keys", []))
            df = df[df["layer_key"].isin(keys) | (df["space"] == space)]
        return df.reset_index(drop=True)

    def _table(self, table: str):
        if table not in self._frames:
            self._frames[table] = journal.read_table(self.root, table)
        return self._frames[table].copy()

    def row_keys(self, table: str) -> set[str]:
        if self._keys is None:
            self._keys = {t: set(self._table(t)["row_key"].dropna().tolist()) for t in TABLES}
        return self._keys[table]

    def has_row(self, table: str, key: str) -> bool:
        return key in self.row_keys(table)

    def n_rows(self, table: str) -> int:
        return len(self.row_keys(table))

    # ------------------------------------------------------------------ identity, shipped data
    @property
    def shipped(self) -> bool:
        """A profile shipped inside the hwnas package: data, read-only in use."""
        return self.root.resolve().is_relative_to(SHIPPED_DIR.resolve())

    def content_id(self) -> str:
        """Content hash of what the profile holds (device settings and every row's key): the id
        runs record as their parent; it changes when rows are added."""
        from hwnas.types import stable_hash

        return stable_hash({"device": self.device_id, **{t: sorted(self.row_keys(t)) for t in TABLES}})

    def copy_to(self, dst: str | os.PathLike) -> DeviceProfile:
        """A working copy at ``dst`` (which must not exist): rows, settings and fitted models."""
        import shutil

        dst = Path(dst)
        if dst.exists() and any(dst.iterdir()):
            raise ProfileError(f"'{dst}' exists and is not empty: choose another directory for the copy.")
        self.compact_if_writable()
        shutil.copytree(self.root, dst, ignore=shutil.ignore_patterns(LOCK_FILE, "evaluation"), dirs_exist_ok=True)
        return DeviceProfile.open(dst)

    def compact_if_writable(self) -> None:
        if not self.shipped and any(journal.journal_path(self.root, t).exists() for t in TABLES):
            with self.writing("compacting"):
                pass

    def check_writable(self) -> None:
        if self.shipped:
            raise ProfileError(f"Profile '{self.root}' ships with hwnas and is read-only: work on a copy "
                               f"(cp -r {self.root} my-profile) and pass that instead.")

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def writing(self, purpose: str = "profiling") -> Iterator[DeviceProfile]:
        """Hold the directory lock while rows are added; compact the tables to Parquet on exit."""
        if self._lock is not None:  # re-entrant within one process
            yield self
            return
        self.check_writable()
        lock = ProfileLock(self.root, purpose).acquire()
        self._lock = lock
        try:
            self.meta = _read_meta(self.root)  # another writer may have extended it before us
            for t in TABLES:
                journal.repair_journal(journal.journal_path(self.root, t))
            self._invalidate()
            yield self
        finally:
            try:
                self.compact()
            finally:
                self._lock = None
                lock.release()

    def _require_lock(self) -> None:
        if self._lock is None:
            raise ProfileError("Profile rows can only be added inside 'with profile.writing():' (holds the lock).")

    def add_row(self, row: ProfileRow) -> bool:
        """Append one row; returns False (and writes nothing) if its ``row_key`` is already stored."""
        self._require_lock()
        table, key = row.table, row.key
        if self.has_row(table, key):
            return False
        journal.append_row(journal.journal_path(self.root, table), row.record(), stored=self.n_rows(table))
        self.row_keys(table).add(key)
        self._frames.pop(table, None)
        return True

    def update_meta(self, **changes: Any) -> None:
        """Merge ``changes`` into ``device.json`` (written atomically)."""
        self._require_lock()
        new = {**self.meta, **changes}
        try:
            atomic_write_json(self.root / DEVICE_FILE, new)
        except OSError as exc:
            raise ProfileError(f"Could not write '{self.root / DEVICE_FILE}' ({exc.strerror or exc}); the "
                               "previous version is intact. Free disk space and re-run.") from None
        self.meta = new

    def register_space(self, space: str, settings: dict[str, Any]) -> None:
        """Record the settings a space was profiled with. A later run extends them: lists are
        joined, counts keep their maximum, anything else keeps its first value."""
        spaces = dict(self.meta.get("spaces", {}))
        old = dict(spaces.get(space, {}))
        for k, v in settings.items():
            prev = old.get(k)
            if isinstance(prev, list) and isinstance(v, list):
                old[k] = sorted(set(prev) | set(v)) if k != "reference_archs" else list(dict.fromkeys(prev + v))
            elif isinstance(prev, int) and isinstance(v, int) and not isinstance(v, bool):
                old[k] = max(prev, v)
            else:
                old.setdefault(k, v)
        spaces[space] = old
        self.update_meta(spaces=spaces)

    def compact(self) -> None:
        for t in TABLES:
            journal.compact(self.root, t)
        self._invalidate()

    def _invalidate(self) -> None:
        self._keys = None
        self._frames = {}

    # ------------------------------------------------------------------ fitted predictors
    def predictor_path(self, space: str, target: str, name: str) -> Path:
        return self.root / PREDICTORS_DIR / space / target / f"{name}.json"

    def save_model(self, model) -> Path:
        """Store a fitted latency/energy/memory model in the profile (JSON, atomic)."""
        self.check_writable()
        path = self.predictor_path(model.space_, model.target_, model.name)
        try:
            atomic_write_json(path, model.to_json())
        except OSError as exc:
            raise ProfileError(f"Could not write '{path}' ({exc.strerror or exc}).") from None
        return path

    def list_models(self, space: str | None = None, target: str | None = None) -> list[dict[str, str]]:
        out = []
        base = self.root / PREDICTORS_DIR
        for p in sorted(base.glob("*/*/*.json")):
            sp, tg = p.parent.parent.name, p.parent.name
            if (space is None or sp == space) and (target is None or tg == target):
                out.append({"space": sp, "target": tg, "name": p.stem, "path": str(p)})
        return out

    def __repr__(self) -> str:
        return f"DeviceProfile('{self.root}', device={self.device_name}, spaces={self.spaces})"


def _read_meta(root: Path) -> dict[str, Any]:
    f = root / DEVICE_FILE
    if not root.exists():
        shipped = ", ".join(sorted(d.name for d in SHIPPED_DIR.iterdir() if (d / DEVICE_FILE).is_file()))
        raise ProfileError(f"No device profile at '{root}'. Create one with: hwnas profile --space SPACE "
                           f"--device DEVICE --out {root}, or name a shipped one ({shipped}).")
    if not f.is_file():
        raise ProfileError(f"'{root}' is not a hwnas device profile (no {DEVICE_FILE}). Pass a directory written "
                           "by 'hwnas profile', or an empty/new --out to create one.")
    try:
        meta = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"'{f}' is corrupt ({exc}). Restore it from a backup or version control, or profile "
                           "again into a new directory.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ProfileError(f"'{f}' is not a hwnas device profile (format {meta.get('format') if isinstance(meta, dict) else None!r}"
                           f", expected '{FORMAT}'). Pass a directory written by 'hwnas profile'.")
    v = meta.get("schema_version")
    if not isinstance(v, int) or v > SCHEMA_VERSION:
        raise ProfileError(f"Profile '{root}' has schema version {v}, newer than this hwnas reads "
                           f"({SCHEMA_VERSION}): upgrade hwnas.")
    if v < SCHEMA_VERSION:
        raise ProfileError(f"Profile '{root}' has the old schema version {v} (this hwnas reads "
                           f"{SCHEMA_VERSION}): profile the device again with this version.")
    missing = [k for k in ("device", "spec", "spec_id", "spaces") if k not in meta]
    if missing:
        raise ProfileError(f"'{f}' lacks {missing}: corrupt. Restore it or profile again into a new directory.")
    return meta
