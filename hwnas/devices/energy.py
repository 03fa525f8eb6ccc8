"""Energy meters: RAPL (powercap sysfs) on x86, NVML total-energy counters on NVIDIA GPUs,
the INA3221 power rails on Jetson boards (sysfs or ``tegrastats``).

A meter measures energy in millijoules over a window of model runs; energy per inference is
the window's energy divided by the runs in it (:meth:`EnergyMeter.per_inference_mj`). Counter
meters (RAPL, NVML) take the difference of a cumulative counter; sampled meters (INA3221)
integrate power samples over time (trapezoid rule) from a background thread.

The figure is *gross* energy of the metered domain (e.g. the whole CPU package, the whole GPU
board), idle power and other processes included — the note says which domain. Where no meter
exists :func:`detect_energy_meter` returns ``None`` and the reason, so a profile can say why its
energy column is empty: an estimate is never stored as a measurement.

The parsers are pure functions (:func:`rapl_delta_uj`, :func:`nvml_delta_mj`,
:func:`parse_tegrastats`, :func:`read_ina3221_sysfs`), tested on recorded text.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import DeviceError

POWERCAP_ROOT = Path("/sys/class/powercap")
HWMON_ROOT = Path("/sys/class/hwmon")
INA3221_IIO_GLOB = "/sys/bus/i2c/drivers/ina3221x/*/iio:device*"


# --------------------------------------------------------------------------- the meter protocol
class EnergyMeter(ABC):
    """Energy over a window of work, in millijoules."""

    name: str = ""
    min_window_s: float = 1.0  # shortest window whose delta is meaningful for this meter

    @property
    @abstractmethod
    def domain(self) -> str:
        """What is metered, e.g. ``RAPL package-0`` (goes into every energy note)."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> float:
        """Energy (mJ) since :meth:`start`."""

    def per_inference_mj(self, run: Callable[[], None], timing=None) -> tuple[float | None, str]:
        """Run ``run`` for at least ``min_window_s`` seconds (and ``timing.min_runs`` runs) inside one
        metered window; return (mJ per inference, note)."""
        min_runs = getattr(timing, "min_runs", 10)
        for _ in range(3):  # warm caches and clocks before the window opens
            run()
        n = 0
        self.start()
        t0 = time.perf_counter()
        while n < min_runs or time.perf_counter() - t0 < self.min_window_s:
            run()
            n += 1
        mj = self.stop()
        secs = time.perf_counter() - t0
        return mj / n, f"{self.domain}: gross energy over {n} runs in {secs:.2f} s (idle and other load included)"


# --------------------------------------------------------------------------- RAPL (powercap)
@dataclass(frozen=True)
class RaplDomain:
    path: Path
    name: str
    max_range_uj: int


def rapl_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Energy between two readings of a RAPL ``energy_uj`` counter, µJ.

    The counter counts up to ``max_energy_range_uj`` and restarts from 0; one wrap between the
    readings is undone (two wraps cannot be told apart, so windows must stay far below the wrap
    period — minutes even at full load).
    """
    if not (0 <= before <= max_range_uj and 0 <= after <= max_range_uj):
        raise DeviceError(f"RAPL reading outside its range 0..{max_range_uj} µJ ({before}, {after}).")
    return after - before if after >= before else max_range_uj - before + after


def find_rapl_domains(root: Path = POWERCAP_ROOT, include_dram: bool = False) -> list[RaplDomain]:
    """Top-level package domains (``intel-rapl:N``, also used by AMD) and, optionally, DRAM subdomains."""
    out = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if not re.fullmatch(r"intel-rapl:\d+(:\d+)?", d.name):
            continue
        try:
            name = (d / "name").read_text().strip()
            max_range = int((d / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            continue
        top = d.name.count(":") == 1
        if top or (include_dram and name == "dram"):
            out.append(RaplDomain(d, name, max_range))
    return out


def read_rapl_uj(domain: RaplDomain) -> int:
    try:
        return int((domain.path / "energy_uj").read_text())
    except PermissionError:
        raise DeviceError(f"Cannot read {domain.path / 'energy_uj'} (permission denied since Linux 5.10): "
                          "run as root or grant read access (chmod o+r .../energy_uj).") from None


class RaplMeter(EnergyMeter):
    """Sum of the CPU package domains' RAPL counters (updated about every millisecond)."""

    name = "rapl"
    min_window_s = 1.0

    def __init__(self, root: Path = POWERCAP_ROOT, include_dram: bool = False) -> None:
        self.domains = find_rapl_domains(Path(root), include_dram)
        if not self.domains:
            raise DeviceError(f"No RAPL domains under {root}.")
        self._start: list[int] = []

    @property
    def domain(self) -> str:
        return "RAPL " + "+".join(d.name for d in self.domains)

    def start(self) -> None:
        self._start = [read_rapl_uj(d) for d in self.domains]

    def stop(self) -> float:
        end = [read_rapl_uj(d) for d in self.domains]
        return sum(rapl_delta_uj(a, b, d.max_range_uj) for a, b, d in zip(self._start, end, self.domains)) / 1e3


# --------------------------------------------------------------------------- NVML
def nvml_delta_mj(before: int, after: int) -> float:
    """Energy between two ``nvmlDeviceGetTotalEnergyConsumption`` readings (mJ since driver load).

    The 64-bit counter does not wrap in practice; a decrease means the driver was reloaded
    between the readings and the window is void.
    """
    if after < before:
        raise DeviceError("NVML energy counter went backwards (driver reloaded during the window): re-measure.")
    return float(after - before)


class NvmlMeter(EnergyMeter):
    """Whole-board GPU energy from NVML's total-energy counter (Volta and newer; ~10-100 ms updates)."""

    name = "nvml"
    min_window_s = 2.0

    def __init__(self, index: int = 0) -> None:
        try:
            import pynvml
        except ImportError:
            raise DeviceError("pynvml is not installed: pip install 'hwnas[gpu]'.") from None
        try:
            pynvml.nvmlInit()
            self._h = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._gpu = pynvml.nvmlDeviceGetName(self._h)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._h)
        except pynvml.NVMLError as exc:
            raise DeviceError(f"NVML energy counter unavailable on GPU {index}: {exc}") from None
        self._nvml = pynvml
        self.index = index
        self._start = 0

    @property
    def domain(self) -> str:
        name = self._gpu.decode() if isinstance(self._gpu, bytes) else self._gpu
        return f"NVML GPU {self.index} ({name}) board"

    def start(self) -> None:
        self._start = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._h)

    def stop(self) -> float:
        return nvml_delta_mj(self._start, self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._h))


# --------------------------------------------------------------------------- Jetson INA3221
_TEGRA_NEW = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)mW/(\d+)mW")  # Xavier / Orin: VDD_IN 5012mW/4980mW
_TEGRA_OLD = re.compile(r"\b(POM_[A-Z0-9_]+|VDD_[A-Z0-9_]+)\s+(\d+)/(\d+)(?!mW)\b")  # TX2 / Nano: POM_5V_IN 2086/2086


def parse_tegrastats(line: str) -> dict[str, float]:
    """Instantaneous power per rail (mW) from one ``tegrastats`` line (both the TX2/Nano
    ``POM_5V_IN 2086/2086`` and the Xavier/Orin ``VDD_IN 5012mW/4980mW`` forms; the second
    number is a running average and is ignored)."""
    rails = {m.group(1): float(m.group(2)) for m in _TEGRA_NEW.finditer(line)}
    if not rails:
        rails = {m.group(1): float(m.group(2)) for m in _TEGRA_OLD.finditer(line)}
    return rails


def total_rail(rails: dict[str, float]) -> str | None:
    """The rail that carries the whole board's input power, where the board reports one."""
    for name in ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0", "VDD_5V_IN"):
        if name in rails:
            return name
    return None


def read_ina3221_sysfs(root: Path) -> dict[str, float]:
    """Power per rail (mW) from an INA3221 sysfs folder.

    Two layouts: the older L4T ``ina3221x`` iio driver (``rail_name_N`` + ``in_power{N}_input`` in
    mW) and the mainline hwmon driver (``inN_label`` + ``inN_input`` mV × ``currN_input`` mA).
    """
    rails: dict[str, float] = {}
    for f in sorted(root.glob("rail_name_*")):
        i = f.name.rsplit("_", 1)[1]
        p = root / f"in_power{i}_input"
        if p.exists():
            rails[f.read_text().strip()] = float(p.read_text())
    for f in sorted(root.glob("in*_label")):
        i = f.name[2:-6]
        v, c = root / f"in{i}_input", root / f"curr{i}_input"
        if v.exists() and c.exists():
            rails[f.read_text().strip()] = float(v.read_text()) * float(c.read_text()) / 1e3
    return rails


def integrate_mj(samples: Sequence[tuple[float, float]]) -> float:
    """Trapezoid integral of (time s, power mW) samples → mJ."""
    e = 0.0
    for (t0, p0), (t1, p1) in zip(samples, samples[1:]):
        e += 0.5 * (p0 + p1) * (t1 - t0)
    return e


class _SampledMeter(EnergyMeter):
    """Integrates power samples taken by a background thread every ``period_s``."""

    period_s = 0.01

    def __init__(self) -> None:
        self._samples: list[tuple[float, float]] = []
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _power_mw(self) -> float: ...

    def _loop(self) -> None:
        while not self._stop_evt.is_set():
            self._samples.append((time.perf_counter(), self._power_mw()))
            self._stop_evt.wait(self.period_s)

    def start(self) -> None:
        self._samples = []
        self._stop_evt.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join()
        self._samples.append((time.perf_counter(), self._power_mw()))
        return integrate_mj(self._samples)


class Ina3221Meter(_SampledMeter):
    """Jetson board power from the INA3221 rail sensors in sysfs (whole-board input rail)."""

    name = "ina3221"

    def __init__(self, root: Path, rail: str | None = None) -> None:
        super().__init__()
        self.root = Path(root)
        rails = read_ina3221_sysfs(self.root)
        self.rail = rail or total_rail(rails) or (next(iter(rails)) if rails else None)
        if self.rail is None or self.rail not in rails:
            raise DeviceError(f"No INA3221 rail {rail or ''} under {root} (found {sorted(rails)}).")

    @property
    def domain(self) -> str:
        return f"INA3221 rail {self.rail}"

    def _power_mw(self) -> float:
        return read_ina3221_sysfs(self.root)[self.rail]


class TegrastatsMeter(_SampledMeter):
    """Jetson board power from ``tegrastats --interval 20`` lines (where sysfs is not readable)."""

    name = "tegrastats"

    def __init__(self, rail: str | None = None, executable: str = "tegrastats") -> None:
        super().__init__()
        self.executable, self.rail = executable, rail
        self._proc: subprocess.Popen | None = None
        self._last = 0.0

    @property
    def domain(self) -> str:
        return f"tegrastats rail {self.rail or 'board input'}"

    def _power_mw(self) -> float:
        return self._last

    def _loop(self) -> None:  # one sample per tegrastats line instead of polling
        if self._proc is None or self._proc.stdout is None:
            return
        for line in self._proc.stdout:
            rails = parse_tegrastats(line)
            name = self.rail or total_rail(rails)
            if name in rails:
                self._last = rails[name]
                self._samples.append((time.perf_counter(), self._last))
            if self._stop_evt.is_set():
                break

    def start(self) -> None:
        try:
            self._proc = subprocess.Popen([self.executable, "--interval", "20"], stdout=subprocess.PIPE, text=True)
        except OSError as exc:
            raise DeviceError(f"Cannot start tegrastats: {exc}.") from None
        super().start()

    def stop(self) -> float:
        self._stop_evt.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join()
        return integrate_mj(self._samples)


# --------------------------------------------------------------------------- detection
def _ina3221_roots() -> list[Path]:
    import glob

    roots = [Path(p) for p in glob.glob(INA3221_IIO_GLOB)]
    if HWMON_ROOT.is_dir():
        for h in sorted(HWMON_ROOT.iterdir()):
            try:
                if (h / "name").read_text().strip() == "ina3221":
                    roots.append(h)
            except OSError:
                continue
    return roots


def detect_energy_meter(provider: str = "CPU") -> tuple[EnergyMeter | None, str]:
    """The meter for a device whose runtime provider is ``provider`` ("CPU", "CUDA", ...), or
    (None, why there is none). Jetson rails cover CPU and GPU alike; otherwise RAPL meters CPU
    devices and NVML GPU devices."""
    import shutil

    reasons = []
    for root in _ina3221_roots():
        try:
            return Ina3221Meter(root), ""
        except (DeviceError, OSError) as exc:
            reasons.append(str(exc))
    tegrastats = shutil.which("tegrastats")
    if tegrastats is not None:  # a Jetson whose rail sensors sysfs does not expose to this user
        return TegrastatsMeter(executable=tegrastats), ""
    if provider.upper() in ("CUDA", "TENSORRT", "GPU"):
        try:
            return NvmlMeter(), ""
        except DeviceError as exc:
            reasons.append(str(exc))
    elif not POWERCAP_ROOT.is_dir():
        reasons.append(f"no {POWERCAP_ROOT} (the kernel exposes no RAPL counters here, as in most "
                       "virtual machines and containers)")
    else:
        try:
            m = RaplMeter()
            m.start()
            m.stop()
            return m, ""
        except DeviceError as exc:
            reasons.append(str(exc))
    return None, "; ".join(reasons) or "no energy meter found"
