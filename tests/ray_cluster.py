"""Test helpers for the loopback Ray cluster (:mod:`hwnas.devices.loopback`): a board Python without torch."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from hwnas.devices.loopback import LoopbackCluster  # noqa: F401  (re-exported for the tests)

LEAN_PACKAGES = ("numpy", "onnxruntime", "openvino", "ray")


def board_python(root: Path) -> Path:
    """A virtual environment with only numpy, the two CPU runtimes (ONNX Runtime, OpenVINO) and ray (this
    machine's versions); its python."""
    venv = root / "board-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pins = [f"{p}=={metadata.version(p)}" for p in LEAN_PACKAGES]
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"could not build the board environment: {r.stderr[-2000:]}")
    return py
