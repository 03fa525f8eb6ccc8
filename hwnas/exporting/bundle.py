"""The deployment bundle: compiled artifacts + ``manifest.json`` + ``manifest.sha256``, written
all-or-nothing, and its integrity check.

A bundle is assembled in a hidden sibling directory and renamed into place only when every file
and the manifest are written, so an interrupted or failed export never leaves a directory that
looks complete. An existing bundle is never overwritten silently.

Integrity: the manifest lists the sha256 of every other file; ``manifest.sha256`` holds the
sha256 of ``manifest.json`` itself. :meth:`DeploymentBundle.open` checks the manifest's hash
first, then every file, then that no file was added — any edited byte anywhere is refused
(a content hash, not a signature: it catches edits and corruption, not a forger who rewrites
both files).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from hwnas.errors import BundleError
from hwnas.fileio import atomic_write_bytes, file_sha256
from hwnas.types import DeploymentManifest, utc_now

MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"


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

    def finish(self, manifest: DeploymentManifest) -> DeploymentBundle:
        files = sorted(p for p in self.tmp.rglob("*") if p.is_file())
        manifest = replace(manifest, created=utc_now(),
                           files={str(p.relative_to(self.tmp)): file_sha256(p) for p in files})
        data = (json.dumps(manifest.to_dict(), indent=1, default=str) + "\n").encode()
        atomic_write_bytes(self.tmp / MANIFEST, data)
        atomic_write_bytes(self.tmp / MANIFEST_HASH, (file_sha256(self.tmp / MANIFEST) + "\n").encode())
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        self._done = True
        return DeploymentBundle(self.out, manifest)

    def __exit__(self, *exc) -> None:
        if not self._done and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass(frozen=True)
class DeploymentBundle:
    """A bundle directory and its typed manifest; :meth:`open` refuses a modified bundle."""

    path: Path
    manifest: DeploymentManifest

    @classmethod
    def open(cls, path: str | os.PathLike) -> DeploymentBundle:
        b = Path(path)
        f = b / MANIFEST
        if not f.is_file():
            raise BundleError(f"'{b}' is not a deployment bundle (no {MANIFEST}); export one with 'hwnas export'.")
        _check_manifest_hash(b)
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"'{f}' is corrupt ({exc}).") from None
        manifest = DeploymentManifest.from_dict(data, str(f))
        _check_files(b, manifest)
        return cls(b, manifest)

    def id(self) -> str:
        """Content id of the bundle: the sha256 of its manifest (which covers every other file)."""
        return file_sha256(self.path / MANIFEST)[:16]

    def file(self, name: str) -> Path:
        return self.path / name


def _refuse(b: Path, problems: list[str]) -> None:
    raise BundleError(f"Bundle '{b}' failed its integrity check: {'; '.join(problems[:5])}. Re-export it; do not "
                      "deploy a modified bundle.")


def _check_manifest_hash(b: Path) -> None:
    h = b / MANIFEST_HASH
    if not h.is_file():
        _refuse(b, [f"{MANIFEST_HASH} is missing"])
    if h.read_text().strip() != file_sha256(b / MANIFEST):
        _refuse(b, [f"{MANIFEST} was modified (its sha256 differs from {MANIFEST_HASH})"])


def _check_files(b: Path, m: DeploymentManifest) -> None:
    bad = []
    for name, digest in m.files.items():
        p = b / name
        if not p.is_file():
            bad.append(f"{name} is missing")
        elif file_sha256(p) != digest:
            bad.append(f"{name} was modified (sha256 differs)")
    listed = set(m.files) | {MANIFEST, MANIFEST_HASH}
    extra = [str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and str(p.relative_to(b)) not in listed]
    bad += [f"{x} is not part of the bundle" for x in extra]
    if bad:
        _refuse(b, bad)
