"""Energy meters: parsers on recorded sysfs/tegrastats/NVML text, meters on copied sysfs trees."""

import json
import shutil
import time
from pathlib import Path

import pytest

from hwnas.devices.energy import (
    Ina3221Meter,
    RaplMeter,
    detect_energy_meter,
    find_rapl_domains,
    integrate_mj,
    nvml_delta_mj,
    parse_tegrastats,
    rapl_delta_uj,
    read_ina3221_sysfs,
    total_rail,
)
from hwnas.errors import DeviceError

DATA = Path(__file__).parent / "data" / "energy"


def test_rapl_delta_handles_wrap_and_rejects_garbage():
    assert rapl_delta_uj(100, 350, 1000) == 250
    assert rapl_delta_uj(900, 50, 1000) == 150  # one wrap: 100 to the top, 50 after
    assert rapl_delta_uj(262142995112, 500000, 262143328850) == 333738 + 500000
    with pytest.raises(DeviceError, match="outside its range"):
        rapl_delta_uj(10, 2000, 1000)


def test_rapl_domains_from_recorded_powercap_tree():
    doms = find_rapl_domains(DATA / "powercap")
    assert [d.name for d in doms] == ["package-0", "package-1"]
    assert doms[0].max_range_uj == 262143328850
    with_dram = find_rapl_domains(DATA / "powercap", include_dram=True)
    assert [d.name for d in with_dram] == ["package-0", "dram", "package-1"]
    assert find_rapl_domains(DATA / "no-such-dir") == []


def test_rapl_meter_sums_packages_across_a_wrap(tmp_path):
    root = tmp_path / "powercap"
    shutil.copytree(DATA / "powercap", root)
    m = RaplMeter(root)
    assert m.domain == "RAPL package-0+package-1"
    m.start()
    (root / "intel-rapl:0" / "energy_uj").write_text("1262\n")  # wrapped: 333,738 + 1,262 µJ
    (root / "intel-rapl:1" / "energy_uj").write_text(str(17771206467 + 4_000_000))
    assert m.stop() == pytest.approx((333738 + 1262 + 4_000_000) / 1e3)
    with pytest.raises(DeviceError, match="No RAPL domains"):
        RaplMeter(tmp_path / "empty")


def test_nvml_counter_deltas_from_recorded_readings():
    rec = json.loads((DATA / "nvml_counter.json").read_text())
    w = rec["window"]
    mj = nvml_delta_mj(w["before_mj"], w["after_mj"])
    assert mj == 797766.0
    assert mj / w["runs"] == pytest.approx(398.883)  # per inference
    assert mj / 1e3 / w["seconds"] == pytest.approx(391.06, rel=1e-3)  # mean watts: plausible for a busy H100
    with pytest.raises(DeviceError, match="driver reloaded"):
        nvml_delta_mj(rec["reload"]["before_mj"], rec["reload"]["after_mj"])


@pytest.mark.parametrize("name,rail,first,keys", [
    ("tegrastats_nano.txt", "POM_5V_IN", 2149.0, {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}),
    ("tegrastats_tx2.txt", "VDD_IN", 2289.0, {"VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_4V0_WIFI", "VDD_IN",
                                              "VDD_SYS_CPU", "VDD_SYS_DDR"}),
    ("tegrastats_orin.txt", "VIN_SYS_5V0", 4036.0, {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}),
    ("tegrastats_orin_nano.txt", "VDD_IN", 5012.0, {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}),
])
def test_tegrastats_lines(name, rail, first, keys):
    lines = (DATA / name).read_text().splitlines()
    rails = parse_tegrastats(lines[0])
    assert set(rails) == keys  # RAM/SWAP/CPU/temperature fields are not mistaken for rails
    assert total_rail(rails) == rail and rails[rail] == first
    if len(lines) > 1:  # second line: under load, the instantaneous (not the average) value is taken
        loaded = parse_tegrastats(lines[1])
        assert loaded[rail] > first
    assert parse_tegrastats("RAM 1903/7860MB (lfb 1x4MB) CPU [3%@345]") == {}


def test_ina3221_sysfs_both_driver_layouts():
    iio = read_ina3221_sysfs(DATA / "ina3221_iio")
    assert iio == {"VDD_IN": 4912.0, "VDD_SYS_GPU": 1218.0, "VDD_SYS_CPU": 761.0}
    hw = read_ina3221_sysfs(DATA / "ina3221_hwmon")
    assert hw["VDD_IN"] == pytest.approx(5064 * 990 / 1e3)  # mV x mA -> mW
    assert set(hw) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}


def test_trapezoid_integration():
    assert integrate_mj([(0.0, 1000.0), (1.0, 1000.0), (2.0, 3000.0)]) == pytest.approx(1000 + 2000)
    assert integrate_mj([(0.0, 5.0)]) == 0.0


def test_sampled_meter_gives_energy_per_inference(tmp_path):
    root = tmp_path / "ina"
    shutil.copytree(DATA / "ina3221_iio", root)
    m = Ina3221Meter(root)
    assert m.rail == "VDD_IN"
    m.min_window_s = 0.2
    mj, note = m.per_inference_mj(lambda: time.sleep(0.002))
    # constant 4912 mW over the window, split across the runs (~2-3 ms each)
    assert 4912 * 0.0015 < mj < 4912 * 0.02
    assert "INA3221 rail VDD_IN" in note and "gross" in note
    with pytest.raises(DeviceError, match="No INA3221 rail"):
        Ina3221Meter(root, rail="VDD_NOPE")


def test_detect_says_why_there_is_no_meter():
    meter, why = detect_energy_meter("CPU")
    if meter is None:
        assert why  # e.g. "no /sys/class/powercap ..." or "permission denied"
    else:
        assert meter.domain
    meter, why = detect_energy_meter("CUDA")
    if meter is None:
        assert "pynvml" in why or "NVML" in why or "INA3221" in why


def test_tegrastats_is_detected_where_sysfs_rails_are_not(tmp_path, monkeypatch):
    """Detection picks tegrastats when it is on PATH and no INA3221 sysfs is readable; the meter reads
    its lines from the process (here a program replaying the Orin lines recorded in tests/data)."""
    import os
    import stat

    exe = tmp_path / "tegrastats"
    exe.write_text(f"#!/bin/sh\nwhile true; do cat '{DATA / 'tegrastats_orin.txt'}'; sleep 0.02; done\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    import hwnas.devices.energy as energy

    monkeypatch.setattr(energy, "_ina3221_roots", lambda: [])
    meter, why = detect_energy_meter("CPU")
    assert isinstance(meter, energy.TegrastatsMeter) and why == "" and meter.executable == str(exe)
    meter.min_window_s = 0.3
    mj, note = meter.per_inference_mj(lambda: time.sleep(0.002))
    assert mj > 0 and "tegrastats" in note


@pytest.mark.gpu
def test_nvml_meter_on_a_real_gpu():
    pytest.importorskip("pynvml")
    from hwnas.devices.energy import NvmlMeter

    m = NvmlMeter()
    m.min_window_s = 1.0
    mj, note = m.per_inference_mj(lambda: time.sleep(0.01))
    assert mj > 0 and "NVML GPU 0" in note
