"""Precisions per layer where the runtime allows, per model where it does not — and what really ran.

Real runtimes on a small Fashion-MNIST subnet (random weights: precision, not accuracy, is under test).
"""

import numpy as np
import pytest

from conftest import randomize_


def _host_isa() -> set[str]:
    from hwnas.devices.base import host_facts

    return set(host_facts().get("isa", []))


HAS_BF16 = bool({"avx512_bf16", "amx_bf16"} & _host_isa())


@pytest.fixture(scope="module")
def subnet(tmp_path_factory):
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet.elastic import ElasticMBV3

    a = ElasticMBV3("fmnist-mbv3").space.max_arch()
    net = randomize_(ElasticMBV3("fmnist-mbv3"), seed=5, arch=a)
    work = tmp_path_factory.mktemp("prec")
    calib = np.random.default_rng(0).standard_normal((16, 1, a.r, a.r)).astype(np.float32)
    return export_subnet(net, a, work / "m.onnx"), calib, work


def test_policy_float_precision_and_labels():
    from hwnas.errors import ConfigError
    from hwnas.types import PrecisionPolicy, Rule

    assert PrecisionPolicy("int8", fallback="bf16").label() == "int8+bf16"
    assert PrecisionPolicy("int8").label() == "int8"
    assert PrecisionPolicy("bf16").label() == "bf16"
    mixed = PrecisionPolicy("bf16", (Rule(r"/blocks\.1/.*", "int8"),))
    assert mixed.label() == "mixed int8/bf16" and mixed.float_precision() == "bf16"
    island = PrecisionPolicy("bf16", (Rule(r"/blocks\.1/.*", "fp32"),))
    with pytest.raises(ConfigError, match="mixes float precisions bf16, fp32"):
        island.float_precision()
    back = PrecisionPolicy.from_dict(PrecisionPolicy("int8", fallback="bf16").to_dict())
    assert back.fallback == "bf16" and back.label() == "int8+bf16"
    with pytest.raises(ConfigError, match="fallback"):
        PrecisionPolicy("int8", fallback="int8")


@pytest.mark.openvino
@pytest.mark.skipif(not HAS_BF16, reason="this CPU lacks avx512_bf16 and amx_bf16: no BF16 to check")
def test_int8_with_bf16_policy_is_what_runs_on_openvino(subnet):
    """The runtime model says which layers ran INT8 and which BF16 — the policy's, not OpenVINO's own choice."""
    from hwnas.devices import get_device
    from hwnas.devices.precision import mismatches
    from hwnas.exporting.mixed import layer_groups, only
    from hwnas.types import PrecisionPolicy

    fp32, calib, work = subnet
    dev = get_device("openvino-cpu", precision="bf16")
    q = dev.quantizer(fp32, work, calib)
    groups = layer_groups(q.layers())
    base = only(groups, [groups[2].name, groups[3].name])
    policy = PrecisionPolicy("bf16", base.rules)  # two blocks INT8, BF16 elsewhere
    ran = dev.ran_precisions(q.build(policy, work / "mixed"))
    layers = ran["layers"]
    in_group = [n for n in layers if any(r.matches(n) for r in policy.rules)]
    assert in_group and all(layers[n] == "int8" for n in in_group), ran
    others = [n for n in layers if n not in in_group]
    assert others and sum(layers[n] == "bf16" for n in others) >= len(others) - 1, ran  # the stem may stay f32
    assert not mismatches(policy, {n: layers[n] for n in in_group})
    assert len(mismatches(policy, layers)) <= 1  # the stem may stay f32: reported, not hidden
    # all-BF16: every compute layer but (at most) the first runs bf16; the same model in f32 runs f32 only
    assert ran["source"].startswith("openvino runtime model")
    bf = dev.ran_precisions(fp32)["summary"]
    assert bf.get("bf16", 0) >= sum(bf.values()) - 1 and "int8" not in bf, bf
    assert get_device("openvino-cpu").ran_precisions(fp32)["summary"].keys() == {"fp32"}


@pytest.mark.openvino
def test_a_precision_the_cpu_lacks_is_one_clear_line():
    from hwnas.devices import get_device
    from hwnas.devices.precision import FLOAT_ISA
    from hwnas.errors import ConfigError

    have = get_device("openvino-cpu").float_precisions()
    missing = [p for p in FLOAT_ISA if p not in have]
    if not missing:
        pytest.skip(f"this CPU has {', '.join(sorted(_host_isa()))} and OpenVINO offers {have}: nothing is missing")
    for p in missing:
        with pytest.raises(ConfigError) as exc:
            get_device("openvino-cpu", precision=p)
        msg = str(exc.value)
        assert "\n" not in msg and p in msg and "use --precision fp32" in msg, msg
        if not set(FLOAT_ISA[p]) & _host_isa():
            assert f"cannot run {p}" in msg and FLOAT_ISA[p][0] in msg  # names the instructions it lacks


def test_ort_refuses_bf16_and_fp16_in_one_line(subnet):
    from hwnas.devices import get_device
    from hwnas.errors import ConfigError
    from hwnas.types import PrecisionPolicy, Rule

    fp32, calib, work = subnet
    q = get_device("onnxruntime-cpu").quantizer(fp32, work, calib)
    for pol in (PrecisionPolicy("bf16"), PrecisionPolicy("int8", fallback="fp16"),
                PrecisionPolicy("fp32", (Rule(r"/blocks\.1/.*", "bf16"),))):
        with pytest.raises(ConfigError) as exc:
            q.build(pol, work / "never")
        assert "\n" not in str(exc.value) and "openvino-cpu" in str(exc.value)
    ran = get_device("onnxruntime-cpu").ran_precisions(q.build(PrecisionPolicy("int8"), work / "i8"))
    assert ran["summary"].get("int8", 0) > 0, ran


@pytest.mark.openvino
def test_openvino_refuses_fp32_islands_inside_a_bf16_model(subnet):
    from hwnas.devices import get_device
    from hwnas.errors import ConfigError
    from hwnas.types import PrecisionPolicy, Rule

    fp32, calib, work = subnet
    q = get_device("openvino-cpu").quantizer(fp32, work, calib)
    with pytest.raises(ConfigError, match="cannot pin single layers"):
        q.build(PrecisionPolicy("bf16", (Rule(r"/blocks\.1/.*", "fp32"), Rule(r"/blocks\.2/.*", "int8"))), work / "x")
    with pytest.raises(ConfigError, match="use --precision bf16"):  # an f32 device asked for bf16 layers
        q.build(PrecisionPolicy("int8", fallback="bf16"), work / "y")


@pytest.mark.openvino
def test_cli_export_asking_a_precision_the_cpu_lacks_is_one_line(tmp_path):
    """``hwnas export --float-precision X`` where the CPU lacks X: exit 2, one line naming the fix, nothing written."""
    import os
    import subprocess
    import sys

    from hwnas.devices.precision import FLOAT_ISA

    from hwnas.devices import get_device

    have = get_device("openvino-cpu").float_precisions()
    missing = [p for p in FLOAT_ISA if p not in have]
    if not missing:
        pytest.skip(f"this CPU has {', '.join(sorted(_host_isa()))} and OpenVINO offers {have}: nothing is missing")
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", "export", "--arch", "tiny-mbv3/r16_k3e2_k3e2",
                        "--out", str(tmp_path / "b"), "--device", "openvino-cpu", "--float-precision", missing[0]],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"})
    err = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(err) == 1 and missing[0] in err[0] and "--precision fp32" in err[0], p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "b").exists()
    # ORT has no bf16 at all: the same one line, pointing at openvino-cpu
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", "export", "--arch", "tiny-mbv3/r16_k3e2_k3e2",
                        "--out", str(tmp_path / "c"), "--device", "onnxruntime-cpu", "--float-precision", "bf16"],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"})
    err = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(err) == 1 and "openvino-cpu" in err[0], p.stderr


def test_host_float_precisions_follow_the_isa():
    """The ISA rule on recorded host facts of three CPU kinds (no runtime involved): a Zen 4 with AVX512-BF16,
    a Xeon with AMX and AVX512-FP16, and an AVX2-only CPU."""
    from hwnas.devices.precision import host_float_precisions, require_float_precision
    from hwnas.errors import ConfigError

    zen4 = {"cpu": "AMD EPYC", "isa": ["avx2", "avx512_bf16", "avx512_vnni", "avx512f"]}
    xeon = {"cpu": "Intel Xeon", "isa": ["amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512f"]}
    avx2 = {"cpu": "old", "isa": ["avx2"]}
    assert host_float_precisions(zen4) == ("fp32", "bf16")
    assert host_float_precisions(xeon) == ("fp32", "bf16", "fp16")
    assert host_float_precisions(avx2) == ("fp32",)
    require_float_precision("openvino-cpu", "bf16", zen4)
    require_float_precision("openvino-cpu", "fp32", avx2)
    with pytest.raises(ConfigError, match=r"cannot run bf16 on this CPU \(old\): it lacks avx512_bf16/amx_bf16"):
        require_float_precision("openvino-cpu", "bf16", avx2)
    with pytest.raises(ConfigError, match="lacks avx512_fp16/amx_fp16"):
        require_float_precision("openvino-cpu", "fp16", zen4)
