"""Every accuracy step on the user's data: derived spaces known by name in later processes, dataset
fingerprints, accuracy datasets and predictors that refuse other data, and the whole path —
train-supernet --data FOLDER, eval-subnet, accuracy-dataset, fit-accuracy, search, INT8 export,
verify — through a folder of real JPEG and PNG files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_folder
from typer.testing import CliRunner

from hwnas.cli import app
from hwnas.errors import ConfigError

runner = CliRunner()


def cli(*args):
    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout


def cli_json(*args):
    code, out = cli(*args, "--json")
    assert code == 0, out[-3000:]
    return json.loads(out)


def refused(*args) -> str:
    """The message of a command that must refuse with one line (the CLI's entry point prints it as
    ``error: ...`` with exit status 2)."""
    from hwnas.errors import HwnasError

    r = runner.invoke(app, [str(a) for a in args])
    assert isinstance(r.exception, HwnasError), (r.exception, r.stdout[-2000:])
    msg = str(r.exception)
    assert msg and "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- derived spaces by name
FRESH = """
import json, sys
from hwnas.supernet.spaces import get_space, list_spaces
from hwnas.types import ArchConfig
sp = get_space(sys.argv[1])
a = ArchConfig.parse(sys.argv[2])
print(json.dumps({"listed": sys.argv[1] in list_spaces(), "classes": sp.n_classes, "res": list(sp.resolutions),
                  "arch": a.to_str()}))
"""


def test_a_derived_space_is_known_by_name_in_a_new_process():
    from hwnas.supernet.derive import derive_space
    from hwnas.supernet.spaces import get_space

    sp = derive_space("tiny-mbv3", 3, 7, (16, 20), name="tiny-mbv3-wire-test-7c", dataset="image-folder 0123")
    a = sp.max_arch()
    r = subprocess.run([sys.executable, "-c", FRESH, sp.name, a.to_str()], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert got == {"listed": True, "classes": 7, "res": [16, 20], "arch": a.to_str()}
    # the same networks under the same name (another folder's note) is the same space; other networks are not
    assert derive_space("tiny-mbv3", 3, 7, (16, 20), name=sp.name, dataset="image-folder 4567") is get_space(sp.name)
    with pytest.raises(ConfigError, match="different space is already registered"):
        derive_space("tiny-mbv3", 3, 8, (16, 20), name=sp.name)


# --------------------------------------------------------------------------- fingerprints
@pytest.mark.data
def test_fashion_mnist_fingerprint_is_its_contents(tmp_path):
    import gzip

    from hwnas.datasets import get_dataset
    from hwnas.datasets.fashion_mnist import FILES, default_dir

    ds = get_dataset("fashion-mnist")
    fp = ds.fingerprint()
    assert len(fp) == 16 and ds.describe()["fingerprint"] == fp == ds.identity()["fingerprint"]
    for pair in FILES.values():
        for f in pair:
            os.symlink(default_dir() / f, tmp_path / f)
    assert get_dataset(str(tmp_path)).fingerprint() == fp  # the same files elsewhere
    name = FILES["test"][1]
    raw = bytearray(gzip.decompress((default_dir() / name).read_bytes()))
    (tmp_path / name).unlink()
    (tmp_path / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1, mtime=0))
    assert get_dataset(str(tmp_path)).fingerprint() == fp  # compressed otherwise, the same contents
    raw[-1] = (raw[-1] + 1) % 10  # one test label
    (tmp_path / name).write_bytes(gzip.compress(bytes(raw)))
    assert get_dataset(str(tmp_path)).fingerprint() != fp


def test_folder_fingerprint_changes_with_its_images(tmp_path):
    from hwnas.datasets import get_dataset

    root = random_folder(tmp_path / "a")
    fp = get_dataset(str(root)).fingerprint()
    assert get_dataset(str(root)).fingerprint() == fp
    (root / "val" / "b" / "3.png").unlink()
    assert get_dataset(str(root)).fingerprint() != fp


# --------------------------------------------------------------------------- predictors refuse other data
def _fitted(ds, tmp_path):
    """A predictor fitted on 40 subnets of tiny-mbv3 whose top-1 is recorded as measured on ``ds``."""
    from hwnas.searching.accuracy import AccuracyPredictor
    from hwnas.supernet.spaces import get_space

    sp = get_space("tiny-mbv3")
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(40)]
    top1 = [60 + 10 * np.log(sp.macs(a)) / np.log(sp.macs(sp.max_arch())) for a in archs]
    return AccuracyPredictor(n_estimators=20).fit(archs, top1, ds.identity()).save(tmp_path / "p.json")


def test_accuracy_predictor_refuses_another_dataset(tmp_path):
    from hwnas.datasets import get_dataset
    from hwnas.searching.accuracy import AccuracyPredictor, fit_with_holdout, load_accuracy_predictor

    a = get_dataset(str(random_folder(tmp_path / "A")))
    b = get_dataset(str(random_folder(tmp_path / "B", seed=3)))
    assert a.fingerprint() != b.fingerprint()
    path = _fitted(a, tmp_path)
    assert AccuracyPredictor.load(path).dataset_ == a.identity()
    assert load_accuracy_predictor("tiny-mbv3", path, a).dataset_ == a.identity()
    with pytest.raises(ConfigError) as exc:
        load_accuracy_predictor("tiny-mbv3", path, b)
    msg = str(exc.value)
    assert "\n" not in msg and a.fingerprint() in msg and b.fingerprint() in msg
    assert f"hwnas fit-accuracy acc.parquet --data {tmp_path / 'B'}" in msg
    # the shipped predictor records no data: it is the space's own (Fashion-MNIST), a folder is refused
    with pytest.raises(ConfigError, match="judged on fashion-mnist"):
        load_accuracy_predictor("tiny-mbv3", None, a)
    # an accuracy dataset judged on A is not fitted as B's
    import pandas as pd

    from hwnas.supernet.spaces import get_space

    sp = get_space("tiny-mbv3")
    rng = np.random.default_rng(1)
    archs = [sp.sample(rng) for _ in range(40)]
    df = pd.DataFrame({"arch": [x.to_str() for x in archs], "space": sp.name,
                       "top1": [float(sp.macs(x)) / 1e4 for x in archs], "data": "image-folder",
                       "data_fingerprint": a.fingerprint()})
    with pytest.raises(ConfigError, match="Build one on this data"):
        fit_with_holdout(df, 8, 0, b)
    assert fit_with_holdout(df, 8, 0, a)[0].dataset_ == a.identity()
    assert fit_with_holdout(df.drop(columns=["data", "data_fingerprint"]), 8, 0, b)[0].dataset_ == b.identity()


@pytest.mark.data
def test_shipped_predictor_takes_its_own_dataset():
    from hwnas.datasets import get_dataset
    from hwnas.searching.accuracy import load_accuracy_predictor

    assert load_accuracy_predictor("tiny-mbv3", None, get_dataset("fashion-mnist")).dataset_ is None


def test_accuracy_dataset_resume_on_other_data_is_refused(tmp_path):
    import pandas as pd

    from hwnas.datasets import get_dataset
    from hwnas.searching.accuracy import build_dataset
    from hwnas.supernet import load_supernet

    a = get_dataset(str(random_folder(tmp_path / "A")))
    b = get_dataset(str(random_folder(tmp_path / "B", seed=3)))
    net, _ = load_supernet("tiny-mbv3")
    arch = net.space.min_arch()
    path = tmp_path / "acc.parquet"
    pd.DataFrame([{"arch": arch.to_str(), "key": arch.key(), "space": "tiny-mbv3", "r": arch.r, "macs_m": 1.0,
                   "params_m": 1.0, "top1": 50.0, "split": "val", "data": "image-folder",
                   "data_fingerprint": a.fingerprint()}]).to_parquet(path)
    with pytest.raises(ConfigError, match=f"judged on image-folder \\(fingerprint {a.fingerprint()}\\)"):
        build_dataset(net, 2, path, None, None, data=b.identity())
    assert len(pd.read_parquet(path)) == 1  # nothing lost


# --------------------------------------------------------------------------- the whole path through a folder
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Fashion-MNIST as 32-px RGB JPEG and PNG files, 10 classes, 240 training and 60 validation
    images (A); B: A with one validation image less."""
    from test_datasets import write_fmnist_folder

    from hwnas.datasets.fashion_mnist import available

    if not available():
        pytest.skip("Fashion-MNIST files absent (apt-get install -y dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("wire")
    write_fmnist_folder(root / "A", {"train": 24, "val": 6}, size=32)
    shutil.copytree(root / "A", root / "B")
    next((root / "B" / "val" / "bag").iterdir()).unlink()
    return root / "A", root / "B"


@pytest.mark.data
@pytest.mark.slow
def test_own_data_end_to_end_through_a_folder(folders, tmp_path):
    from hwnas.datasets import get_dataset
    from hwnas.supernet import load_supernet
    from hwnas.supernet.evaluate import evaluate_subnet
    from hwnas.types import ArchConfig

    A, B = folders
    fp_a = get_dataset(str(A)).fingerprint()
    # 1. a super-network for the folder's 10 classes and 32-px RGB images, one tiny epoch
    t = cli_json("train-supernet", "--space", "tiny-mbv3", "--data", A, "--out", tmp_path / "w", "--epochs", 1,
                 "--batch-size", 48, "--n-random", 1, "--threads", 1)
    space, w = t["space"], t["weights"]
    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    assert (sp.in_channels, sp.n_classes, space.startswith("tiny-mbv3-10c")) == (3, 10, True)
    card = json.loads(open(t["model_card"]).read())
    assert card["space"] == space and card["data"]["fingerprint"] == fp_a and card["epochs_done"] == 1
    # 2. one subnet, BN recalibrated on the folder's training images, in a fresh process on "another machine"
    # (an empty space store): the weights carry their space
    arch = sp.max_arch().to_str()
    elsewhere = {**os.environ, "HWNAS_CACHE": str(tmp_path / "elsewhere")}
    r = subprocess.run([sys.executable, "-m", "hwnas.cli", "eval-subnet", "--arch", arch, "--checkpoint", w,
                        "--data", str(A), "--calib-images", "100", "--json"], capture_output=True, text=True,
                       timeout=300, env=elsewhere)
    assert r.returncode == 0, r.stderr[-2000:]
    ev = json.loads(r.stdout)
    net, _ = load_supernet(space, w, allow_random=False)
    tr, va = get_dataset(str(A), space).splits("train", "val")
    assert ev["images"] == 60 and ev["top1"] == round(evaluate_subnet(net, ArchConfig.parse(arch), tr, va, 100), 2)
    # 3. an accuracy dataset on the folder, resumed; never on another folder
    acc = tmp_path / "acc.parquet"
    cli_json("accuracy-dataset", "--space", space, "--checkpoint", w, "--data", A, "--n", 34, "--calib-images", 48,
             "--out", acc)
    import pandas as pd

    first = pd.read_parquet(acc)
    rep = cli_json("accuracy-dataset", "--space", space, "--checkpoint", w, "--data", A, "--n", 36,
                   "--calib-images", 48, "--out", acc)
    df = pd.read_parquet(acc)
    assert rep["subnets"] == 36 and df["key"].tolist()[:34] == first["key"].tolist()
    assert set(df["data_fingerprint"]) == {fp_a} and df["top1"].between(0, 100).all()
    assert fp_a in refused("accuracy-dataset", "--space", space, "--checkpoint", w, "--data", B, "--n", 37,
                           "--out", acc)
    # 4. the predictor, stored with the folder's fingerprint
    pred = tmp_path / "pred.json"
    cli_json("fit-accuracy", acc, "--out", pred, "--holdout", 6, "--data", A)
    assert json.loads(pred.read_text())["dataset"] == {"name": "image-folder", "fingerprint": fp_a}
    # 5. a profile of the derived space and an accuracy-aware search on the folder
    prof = tmp_path / "prof"
    code, out = cli("profile", "--space", space, "--out", prof, "--checkpoint", w, "--samples", 24,
                    "--reference-set", 4, "--repeats", 2, "--no-ops", "--quick", "--no-energy")
    assert code == 0, out[-2000:]
    search = ("search", "--space", space, "--profile", prof, "--checkpoint", w, "--accuracy-predictor", pred,
              "--generations", 4, "--pop-size", 16, "--top-k", 2, "--max-measurements", 3, "--latency-budget-ms", 5,
              "--final-eval", 1, "--no-calibrate")
    line = refused(*search, "--out", tmp_path / "runB", "--data", B)
    assert fp_a in line and "fit-accuracy" in line and not (tmp_path / "runB").exists()
    front = cli_json(*search, "--out", tmp_path / "run", "--data", A)
    assert front["meta"]["data"]["fingerprint"] == fp_a
    best = front["candidates"][front["best"]]
    ba = ArchConfig.parse(best["arch"])
    assert best["measured"]["accuracy_top1"] == pytest.approx(evaluate_subnet(net, ba, tr, va))
    # 6. INT8 export: calibrated on the folder's training images, its accuracy checked on the validation images
    m = cli_json("export", "--run", tmp_path / "run", "--out", tmp_path / "bundle", "--checkpoint", w, "--data", A,
                 "--precision", "int8")
    assert m["precision"] == "int8" and m["dataset"]["fingerprint"] == fp_a
    assert m["accuracy"]["images"] == 60 and 0 <= m["accuracy"]["deployed_top1"] <= 100
    assert set(m["policy_summary"]) == {"int8"}
    # 7. verify: by default on the bundle's own folder; another folder is refused
    assert (tmp_path / "bundle" / "space.json").is_file()  # the derived space travels with its bundle
    fresh = {**os.environ, "HWNAS_CACHE": str(tmp_path / "another-machine")}  # where the space was never derived
    r = subprocess.run([sys.executable, "-m", "hwnas.cli", "verify", str(tmp_path / "bundle"), "--json",
                        "--latency-tolerance", "10"], capture_output=True, text=True, timeout=300, env=fresh)
    assert r.returncode == 0, r.stderr[-2000:]  # latency agreement on shared cores is a benchmark's business
    v = json.loads(r.stdout)
    assert v["accuracy"]["ok"] and v["accuracy"]["diff"] == 0, v["accuracy"]
    assert fp_a in refused("verify", tmp_path / "bundle", "--data", B)


def test_train_supernet_cli_fine_tunes_from_init_on_a_folder_and_resumes(tmp_path):
    """``hwnas train-supernet --data FOLDER --init CKPT``: a space for the folder's 3 classes, weights
    started from a 1000-class checkpoint (new classifier), a model card naming both; --resume."""
    import torch
    from safetensors.torch import load_file, save_file

    from conftest import randomize_
    from hwnas.supernet.derive import derive_space
    from hwnas.supernet.elastic import ElasticMBV3

    folder = random_folder(tmp_path / "data", n=6)
    big = derive_space("tiny-mbv3", 3, 1000, name="tiny-mbv3-wire-pretrained-1000c")
    src = randomize_(ElasticMBV3(big), seed=5)
    save_file({k: v.contiguous() for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")},
              str(tmp_path / "pretrained.safetensors"))
    args = ("train-supernet", "--space", "tiny-mbv3", "--data", folder, "--init", tmp_path / "pretrained.safetensors",
            "--space-name", "tiny-mbv3-wire-3c", "--out", tmp_path / "w", "--batch-size", 6, "--n-random", 1,
            "--lr", 0.01, "--threads", 1)
    t = cli_json(*args, "--epochs", 1)
    assert t["space"] == "tiny-mbv3-wire-3c"
    tuned = load_file(t["weights"])
    assert tuned["classifier.linear.weight"].shape[0] == 3
    start = src.state_dict()["first_conv.conv.weight"]
    assert 0 < (tuned["first_conv.conv.weight"] - start).norm() < 0.2 * start.norm()  # moved, from the checkpoint
    card = json.loads(open(t["model_card"]).read())
    assert card["init"]["checkpoint"] == str(tmp_path / "pretrained.safetensors")
    assert "1000 classes" in card["init"]["notes"][0] and card["data"]["classes"] == 3
    cli_json(*args, "--epochs", 2, "--resume")
    assert [h["epoch"] for h in json.loads((tmp_path / "w" / "train_log.json").read_text())["history"]] == [1, 2]
    assert torch.isfinite(load_file(t["weights"])["classifier.linear.weight"]).all()


@pytest.mark.data
def test_accuracy_dataset_written_before_data_was_recorded_resumes_on_the_spaces_own(tmp_path):
    import pandas as pd

    from hwnas.datasets import get_dataset
    from hwnas.searching.accuracy import build_dataset, data_record
    from hwnas.supernet import load_supernet

    net, _ = load_supernet("tiny-mbv3")
    ds = get_dataset("fashion-mnist")
    train, val = ds.splits("train", "val")
    calib, val = train.subset(np.arange(100)), val.subset(np.arange(200))
    path = tmp_path / "acc.parquet"
    build_dataset(net, 1, path, calib, val)  # no data recorded, as files written before
    assert data_record(pd.read_parquet(path)) is None
    df = build_dataset(net, 2, path, calib, val, data=ds.identity())
    assert len(df) == 2 and data_record(df) == ds.identity()
    b = get_dataset(str(random_folder(tmp_path / "B")))
    with pytest.raises(ConfigError, match="judged on fashion-mnist"):
        build_dataset(net, 3, path, calib, val, data=b.identity())


def test_data_options_reach_the_folder_from_the_command_line(tmp_path):
    """``--data-option on_bad_image=skip``: a truncated image is left out and counted; without it the
    command stops with one line naming the file; an unknown option is one line naming the known."""
    from safetensors.torch import save_file

    from conftest import randomize_
    from hwnas.supernet.derive import derive_space, space_to_dict
    from hwnas.supernet.elastic import ElasticMBV3

    folder = random_folder(tmp_path / "data", n=5)
    bad = folder / "val" / "b" / "2.png"
    bad.write_bytes(bad.read_bytes()[:60])
    sp = derive_space("tiny-mbv3", 3, 3, (16, 20), name="tiny-mbv3-wire-options-3c")
    net = randomize_(ElasticMBV3(sp), seed=1)
    w = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")},
              str(w), metadata={"space": sp.name, "space_def": json.dumps(space_to_dict(sp))})
    args = ("eval-subnet", "--arch", sp.max_arch().to_str(), "--checkpoint", w, "--data", folder,
            "--calib-images", 10)
    msg = refused(*args)
    assert str(bad) in msg and "on_bad_image" in msg
    r = cli_json(*args, "--data-option", "on_bad_image=skip")
    assert r["images"] == 15 and r["skipped_images"] == 1 and 0 <= r["top1"] <= 100
    assert "known: workers" in refused(*args, "--data-option", "on_bad_images=skip")


FIT_ELSEWHERE = """
import sys
from hwnas.cli import main
sys.argv = ["hwnas", "fit-accuracy", sys.argv[1], "--out", sys.argv[2], "--holdout", "5", "--json"]
main()
"""


def test_an_accuracy_dataset_of_a_derived_space_is_fitted_where_the_space_was_never_derived(tmp_path):
    import pandas as pd

    from hwnas.searching.accuracy import derived_space_def
    from hwnas.supernet.derive import derive_space

    sp = derive_space("tiny-mbv3", 3, 4, (16, 20, 24), name="tiny-mbv3-wire-travels-4c")
    rng = np.random.default_rng(0)
    archs = list({a.key(): a for a in (sp.sample(rng) for _ in range(60))}.values())[:36]
    pd.DataFrame({"arch": [a.to_str() for a in archs], "space": sp.name,
                  "top1": [float(sp.macs(a)) / 1e4 for a in archs],
                  "space_def": derived_space_def(sp.name)}).to_parquet(tmp_path / "acc.parquet")
    assert derived_space_def("tiny-mbv3") is None  # a named space needs no definition
    r = subprocess.run([sys.executable, "-c", FIT_ELSEWHERE, str(tmp_path / "acc.parquet"), str(tmp_path / "p.json")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HWNAS_CACHE": str(tmp_path / "elsewhere")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "p.json").read_text())["space"] == sp.name
