"""The deployment bundle: compiled artifacts + ``manifest.json``, written all-or-nothing, and its verification.

A bundle is assembled in a hidden sibling directory and renamed into place only when every
file and the manifest are written, so an interrupted or failed export never leaves a
directory that looks complete. An existing bundle is never overwritten silently.

``manifest.json`` records the arch, the precision policy, the device spec and runtime
versions, host facts, the sha256 of every file, FP32 and deployed accuracy on the test set,
predicted (when known) and measured latency — raw and reference-normalised — and memory.
:func:`verify` refuses a bundle whose hashes do not match, then re-measures latency and
accuracy on the device and compares them with the manifest.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from hwnas.errors import BundleError
from hwnas.fileio import atomic_write_json, file_sha256

FORMAT = "hwnas-deployment-bundle"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


class BundleWriter:
    """``with BundleWriter(out) as w: w.add_file(...); w.finish(manifest)``."""

    def __init__(self, out: str | os.PathLike, overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()) and not overwrite:
            raise BundleError(f"'{self.out}' exists and is not empty: choose a new --out or pass --overwrite.")
        self.tmp = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        self._done = False

    def __enter__(self) -> BundleWriter:
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        return self

    @property
    def dir(self) -> Path:
        return self.tmp

    def add_file(self, src: str | os.PathLike, name: str) -> Path:
        dst = self.tmp / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    def finish(self, manifest: dict[str, Any]) -> Path:
        files = sorted(p for p in self.tmp.rglob("*") if p.is_file())
        manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION,
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **manifest,
                    "files": {str(p.relative_to(self.tmp)): file_sha256(p) for p in files}}
        atomic_write_json(self.tmp / MANIFEST, manifest)
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        self._done = True
        return self.out

    def __exit__(self, *exc) -> None:
        if not self._done and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


def read_manifest(bundle: str | os.PathLike) -> dict[str, Any]:
    b = Path(bundle)
    f = b / MANIFEST
    if not f.is_file():
        raise BundleError(f"'{b}' is not a deployment bundle (no {MANIFEST}); export one with 'hwnas export'.")
    try:
        m = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"'{f}' is corrupt ({exc}).") from None
    if m.get("format") != FORMAT:
        raise BundleError(f"'{f}' is not an hwnas deployment manifest.")
    if m.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"Bundle schema_version {m.get('schema_version')} is not {SCHEMA_VERSION}; re-export it.")
    return m


def check_hashes(bundle: str | os.PathLike, manifest: dict[str, Any] | None = None) -> None:
    """Raise :class:`BundleError` naming every file that is missing, changed or unlisted."""
    b = Path(bundle)
    m = manifest or read_manifest(b)
    bad = []
    for name, digest in m["files"].items():
        p = b / name
        if not p.is_file():
            bad.append(f"{name} is missing")
        elif file_sha256(p) != digest:
            bad.append(f"{name} was modified (sha256 differs)")
    listed = set(m["files"]) | {MANIFEST}
    extra = [str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and str(p.relative_to(b)) not in listed]
    bad += [f"{x} is not part of the bundle" for x in extra]
    if bad:
        raise BundleError(f"Bundle '{b}' failed its integrity check: {'; '.join(bad[:5])}. Re-export it; do not "
                          "deploy a modified bundle.")
