"""Image-folder datasets: layouts, splits, OFA's transforms against PIL/numpy references, worker
decoding, bad data, and evaluation / fine-tuning through a folder of real JPEG and PNG files."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from hwnas.datasets import get_dataset
from hwnas.datasets.folder import FolderDataset
from hwnas.errors import CheckpointError, ConfigError, DataError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TRAIN_PER_CLASS, VAL_PER_CLASS = 24, 6


def write_fmnist_folder(root, per_class: dict[str, int], size: int = 64) -> None:
    """Fashion-MNIST images, upsampled to ``size`` px and coloured per class, as RGB JPEG and PNG
    files in ``root/<split>/<class>/`` (``per_class``: images per class for each split)."""
    from hwnas.datasets.fashion_mnist import FashionMNIST

    ds = FashionMNIST()
    full = ds.split("train-full")
    rng = np.random.default_rng(0)
    used = 0
    for split, n in per_class.items():
        for k, cls in enumerate(ds.classes):
            members = np.flatnonzero(full.labels == k)[used:used + n]
            d = root / split / cls
            d.mkdir(parents=True)
            tint = rng.uniform(0.3, 1.0, 3)
            for j, i in enumerate(members):
                g = np.asarray(Image.fromarray(full.images[i, 0]).resize((size, size), Image.BILINEAR), np.float32)
                rgb = (g[..., None] * tint + (255 - g[..., None]) * (1 - tint) * 0.5).clip(0, 255).astype(np.uint8)
                im = Image.fromarray(rgb, "RGB")
                if j % 2:
                    im.save(d / f"{cls}_{j:03d}.png")
                else:
                    im.save(d / f"{cls}_{j:03d}.jpg", quality=90)
        used += n


@pytest.fixture(scope="module")
def fmnist_folder(tmp_path_factory):
    from hwnas.datasets.fashion_mnist import available

    if not available():
        pytest.skip("Fashion-MNIST files absent (apt-get install -y dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("fmnist-folder")
    write_fmnist_folder(root, {"train": TRAIN_PER_CLASS, "val": VAL_PER_CLASS})
    return root


def synthetic_images(root) -> list:
    """Smooth random RGB content in awkward sizes (portrait, landscape, odd, tiny, very wide),
    plus grayscale, RGBA and palette files."""
    rng = np.random.default_rng(1)
    d = root / "train" / "x"
    d.mkdir(parents=True)
    out = []
    for n, (w, h) in enumerate([(500, 375), (375, 500), (64, 64), (65, 63), (301, 300), (600, 30), (183, 250)]):
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        phase = rng.uniform(0, 6, 3)
        img = np.stack([np.sin(7 * xx + 5 * yy + p) for p in phase], -1) * 100 + 128
        img = (img + rng.normal(0, 12, img.shape)).clip(0, 255).astype(np.uint8)
        p = d / (f"{n}.jpg" if n % 2 else f"{n}.png")
        Image.fromarray(img).save(p)
        out.append(p)
    gray = Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8), "L")
    gray.save(d / "gray.png")
    rgba = Image.fromarray(rng.integers(0, 255, (80, 70, 4), dtype=np.uint8), "RGBA")
    rgba.save(d / "rgba.png")
    gray.convert("P").save(d / "palette.png")
    (root / "val" / "x").mkdir(parents=True)
    shutil.copy(out[0], root / "val" / "x")
    return out + [d / "gray.png", d / "rgba.png", d / "palette.png"]


def ref_eval(path, r: int) -> np.ndarray:
    """OFA's evaluation transform as torchvision runs it on a PIL image, written out with PIL + numpy."""
    im = Image.open(path).convert("RGB")
    s = math.ceil(r / 0.875)
    w, h = im.size
    if min(w, h) != s:
        im = im.resize((s, int(s * h / w)) if w <= h else (int(s * w / h), s), Image.BILINEAR)
    w, h = im.size
    top, left = int(round((h - r) / 2.0)), int(round((w - r) / 2.0))
    a = np.asarray(im.crop((left, top, left + r, top + r)), dtype=np.float32) / np.float32(255)
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def ref_train(path, r: int, seed: int, pos: int) -> np.ndarray:
    """RandomResizedCrop(r, (0.08, 1), (3/4, 4/3)) + flip + ColorJitter(32/255, saturation 0.5)
    with the draws in the documented order from default_rng([seed, pos])."""
    rng = np.random.default_rng([seed, pos])
    im = Image.open(path).convert("RGB")
    W, H = im.size
    for _ in range(10):
        target = W * H * rng.uniform(0.08, 1.0)
        ar = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < w <= W and 0 < h <= H:
            top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            break
    else:
        if W / H < 3 / 4:
            w, h = W, int(round(W / (3 / 4)))
        elif W / H > 4 / 3:
            w, h = int(round(H * 4 / 3)), H
        else:
            w, h = W, H
        top, left = (H - h) // 2, (W - w) // 2
    im = im.crop((left, top, left + w, top + h)).resize((r, r), Image.BILINEAR)
    if rng.random() < 0.5:
        im = ImageOps.mirror(im)
    brightness_first = rng.random() < 0.5
    b, s = rng.uniform(1 - 32 / 255, 1 + 32 / 255), rng.uniform(0.5, 1.5)
    if brightness_first:
        im = ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(b)).enhance(s)
    else:
        im = ImageEnhance.Brightness(ImageEnhance.Color(im).enhance(s)).enhance(b)
    a = np.asarray(im, dtype=np.float32) / np.float32(255)
    return ((a - MEAN) / STD).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    paths = synthetic_images(root)
    return root, paths


# --------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("r", [28, 100, 160, 224])
def test_eval_transform_matches_pil_numpy_reference(synthetic, r):
    root, paths = synthetic
    split = FolderDataset(root, workers=0).split("train")
    files = [str(split.path(i)) for i in range(len(split))]
    assert sorted(files) == sorted(map(str, paths))
    x = np.concatenate([b for b, _ in split.batches(r, batch_size=4)])
    assert x.dtype == np.float32 and x.shape == (len(files), 3, r, r)
    ref = np.stack([ref_eval(p, r) for p in files])
    assert np.abs(x - ref).max() <= 1e-6
    assert split.preprocessing(r)["resize_shorter_px"] == math.ceil(r / 0.875)
    # INT8 calibration data: a seeded draw of training images through the evaluation transform
    pick = np.sort(np.random.default_rng(7).permutation(len(split))[:4])
    assert np.abs(split.calibration_inputs(r, 4, seed=7) - ref[pick]).max() <= 1e-6


@pytest.mark.parametrize("r,seed", [(64, 0), (224, 937162211)])
def test_train_transform_matches_reference(synthetic, r, seed):
    root, _ = synthetic
    split = FolderDataset(root, workers=0).split("train")
    idx = np.r_[np.arange(len(split)), 0]  # the first image twice: another position, other draws
    files = [str(split.path(i)) for i in idx]
    x = np.concatenate([b for b, _ in split.batches(r, batch_size=3, train=True, seed=seed, indices=idx)])
    ref = np.stack([ref_train(p, r, seed, pos) for pos, p in enumerate(files)])
    assert np.abs(x - ref).max() <= 1e-6
    assert not np.array_equal(x[0], x[-1])
    again = np.concatenate([b for b, _ in split.batches(r, batch_size=5, train=True, seed=seed, indices=idx)])
    assert np.array_equal(x, again)  # batch size does not change the draws
    other = np.concatenate([b for b, _ in split.batches(r, batch_size=5, train=True, seed=seed + 1, indices=idx)])
    assert not np.array_equal(x, other)


def test_non_rgb_images_convert_or_refuse(synthetic):
    root, _ = synthetic
    ds = FolderDataset(root, workers=0)
    list(ds.split("train").batches(32, 4))
    assert sorted(p.rsplit("/", 1)[-1] for p in ds.converted) == ["gray.png", "palette.png", "rgba.png"]
    assert sorted(ds.converted.values()) == ["L", "P", "RGBA"] and ds.describe()["converted"] == 3
    strict = FolderDataset(root, workers=0, on_non_rgb="refuse")
    with pytest.raises(DataError, match=r"is a (grayscale|RGBA \(with alpha\)|palette) image .* the space takes "
                                        r"RGB: .* on_non_rgb='convert'"):
        list(strict.split("train").batches(32, 4))
    with pytest.raises(ConfigError, match="on_non_rgb must be"):
        FolderDataset(root, on_non_rgb="drop")


# --------------------------------------------------------------------------- layouts and splits
@pytest.mark.data
def test_imagenet_layout_classes_and_registry(fmnist_folder):
    from hwnas.datasets.fashion_mnist import FashionMNIST, default_dir

    ds = get_dataset(fmnist_folder, workers=0)
    assert isinstance(ds, FolderDataset) and ds.layout == "train/val"
    assert ds.classes == tuple(sorted(FashionMNIST().classes))
    tr, va, te = ds.splits("train", "val", "test")
    assert (len(tr), len(va)) == (10 * TRAIN_PER_CLASS, 10 * VAL_PER_CLASS) and te is va
    for i in (0, 37, 239):
        assert tr.path(i).parent.name == ds.classes[tr.labels[i]]
    d = ds.describe()
    assert d["test_is_val"] and d["images"]["train"] == 240 and len(d["fingerprint"]) == 16
    assert get_dataset(fmnist_folder).fingerprint() == ds.fingerprint()
    assert isinstance(get_dataset(default_dir()), FashionMNIST)  # IDX files stay Fashion-MNIST
    with pytest.raises(DataError, match="takes 3-channel images and 1000 classes.*10 classes"):
        get_dataset(fmnist_folder, "ofa-mbv3-w1.0")
    with pytest.raises(DataError, match="Unknown dataset option"):
        get_dataset(fmnist_folder, worker=2)


@pytest.mark.data
def test_one_folder_split_is_seeded_stratified_and_disjoint(fmnist_folder):
    one = fmnist_folder / "train"  # class sub-folders only: split by fraction
    a = FolderDataset(one, val_fraction=0.25, split_seed=3)
    b = FolderDataset(one, val_fraction=0.25, split_seed=3)
    c = FolderDataset(one, val_fraction=0.25, split_seed=4)
    assert a.layout == "one folder"
    for name in ("train", "val"):
        assert list(a.split(name).files) == list(b.split(name).files)
    assert list(a.split("val").files) != list(c.split("val").files)
    tr, va = set(a.split("train").files), set(a.split("val").files)
    assert not tr & va and len(tr | va) == 10 * TRAIN_PER_CLASS
    assert np.bincount(a.split("val").labels).tolist() == [6] * 10
    assert a.split("test") is a.split("val") and a.fingerprint() != c.fingerprint()


@pytest.mark.data
def test_worker_and_in_process_batches_identical(fmnist_folder):
    ds0, ds2 = FolderDataset(fmnist_folder, workers=0), FolderDataset(fmnist_folder, workers=2)
    try:
        idx = np.random.default_rng(0).permutation(240)[:100]
        for kw in ({"train": False}, {"train": True, "seed": 5}):
            got = [list(d.split("train").batches(40, 32, indices=idx, **kw)) for d in (ds0, ds2)]
            assert [len(y) for _, y in got[0]] == [32, 32, 32, 4]
            for (x0, y0), (x2, y2) in zip(*got):
                assert np.array_equal(x0, x2) and np.array_equal(y0, y2)
            assert np.array_equal(np.concatenate([y for _, y in got[0]]), ds0.split("train").labels[idx])
        seen = []
        list(ds2.split("val").batches(32, 25, progress=lambda done, total: seen.append((done, total))))
        assert seen == [(25, 60), (50, 60), (60, 60)]
        calib = ds2.split("train").calibration_inputs(32, 50)
        assert calib.shape == (50, 3, 32, 32)
        few = ds2.split("val").sample(20, seed=1)
        x, y = few.arrays(32)
        assert x.shape == (20, 3, 32, 32) and np.array_equal(y, few.labels) and len(set(y.tolist())) >= 5
    finally:
        ds2.close()


# --------------------------------------------------------------------------- bad data
def _tiny_folder(root, classes=("a", "b"), n=3, splits=("train", "val")):
    rng = np.random.default_rng(2)
    for s in splits:
        for c in classes:
            (root / s / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / s / c / f"{i}.jpg")
    return root


def test_unreadable_and_truncated_images_stop_or_skip(tmp_path):
    root = _tiny_folder(tmp_path / "ds")
    good = (root / "train" / "a" / "0.jpg").read_bytes()
    (root / "train" / "a" / "1.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (root / "train" / "b" / "2.jpg").write_bytes(b"not an image at all")  # unreadable
    (root / "train" / "b" / "notes.txt").write_text("ignored: not an image extension")
    stop = FolderDataset(root, workers=0).split("train")
    with pytest.raises(DataError, match=r"Cannot decode image '.*train/a/1\.jpg' \(.*truncated.*on_bad_image='skip'"):
        list(stop.batches(32, 4))
    ds = FolderDataset(root, workers=0, on_bad_image="skip")
    got = list(ds.split("train").batches(32, 4))
    ys = np.concatenate([y for _, y in got])
    assert sum(len(x) for x, _ in got) == len(ys) == 4 and ys.tolist() == [0, 0, 1, 1]
    assert sorted(p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1] for p in ds.skipped) == ["a/1.jpg", "b/2.jpg"]
    assert ds.describe()["skipped"] == 2 and "cannot identify" in " ".join(ds.skipped.values())
    x, y = ds.split("train").arrays(32)
    assert len(x) == len(y) == 4 and len(ds.split("train")) == 6
    with pytest.raises(ConfigError, match="on_bad_image must be"):
        FolderDataset(root, on_bad_image="ignore")


def test_folder_structure_errors(tmp_path):
    root = _tiny_folder(tmp_path / "empty-class")
    (root / "val" / "c").mkdir()
    (root / "train" / "c").mkdir()
    with pytest.raises(DataError, match=r"Class folder '.*train/c' holds no images: add images or remove"):
        FolderDataset(root)
    root = _tiny_folder(tmp_path / "differ", classes=("a", "b"))
    _tiny_folder(root, classes=("zebra",), splits=("val",))
    shutil.rmtree(root / "val" / "b")
    with pytest.raises(DataError, match="Classes differ between 'train' and 'val': only in train: b; "
                                        "only in val: zebra"):
        FolderDataset(root)
    root = tmp_path / "no-images"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        (root / c / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images .* in any of its 2 class folders"):
        get_dataset(root)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "img.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="neither the Fashion-MNIST IDX files nor class folders"):
        get_dataset(flat)
    with pytest.raises(DataError, match="does not exist"):
        FolderDataset(tmp_path / "missing")
    with pytest.raises(DataError, match="pass --data FOLDER"):
        get_dataset("image-folder")


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_checkpoint_with_nan_or_inf_is_refused_naming_the_tensor(tmp_path, bad):
    from safetensors.torch import save_file

    from hwnas.supernet import load_supernet
    from hwnas.supernet.elastic import ElasticMBV3

    state = {k: v.clone() for k, v in ElasticMBV3("tiny-mbv3").state_dict().items()}
    state["blocks.2.conv.point_linear.conv.conv.weight"][0, 0] = bad
    torch.save({"state_dict": state}, tmp_path / "ckpt.pth")
    save_file({k: v.contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")},
              str(tmp_path / "ckpt.safetensors"))
    for f in ("ckpt.pth", "ckpt.safetensors"):
        with pytest.raises(CheckpointError, match=r"non-finite values in 1 tensor\(s\) \(first: "
                                                  r"blocks\.2\.conv\.point_linear\.conv\.conv\.weight"):
            load_supernet("tiny-mbv3", tmp_path / f)


# --------------------------------------------------------------------------- derived spaces, evaluation, fine-tuning
def test_derived_space_round_trips_and_registers_once():
    from hwnas.supernet.derive import derive_space, resolutions_for_images, space_from_dict, space_to_dict
    from hwnas.supernet.spaces import get_space
    from hwnas.types import ArchConfig

    sp = derive_space("ofa-mbv3-w1.0", 3, 10, resolutions_for_images("ofa-mbv3-w1.0", 64))
    assert sp.name == "ofa-mbv3-w1.0-10c-r32-56" and sp.resolutions == tuple(range(32, 57, 4))
    assert sp.stages == get_space("ofa-mbv3-w1.0").stages and sp.n_classes == 10
    assert space_from_dict(space_to_dict(sp)) == sp
    assert derive_space("ofa-mbv3-w1.0", 3, 10, range(32, 57, 4)) is sp  # idempotent
    with pytest.raises(ConfigError, match="different space is already registered"):
        derive_space("ofa-mbv3-w1.0", 3, 12, range(32, 57, 4), name=sp.name)
    a = ArchConfig.parse(sp.max_arch().to_str())
    assert a.space == sp.name and sp.macs(a) < get_space("ofa-mbv3-w1.0").macs(get_space("ofa-mbv3-w1.0").max_arch())
    assert resolutions_for_images("ofa-mbv3-w1.0", 375) == get_space("ofa-mbv3-w1.0").resolutions


@pytest.mark.data
def test_bn_recalibration_and_evaluation_through_a_folder(fmnist_folder):
    from conftest import randomize_
    from hwnas.supernet.derive import space_for_dataset
    from hwnas.supernet.elastic import ElasticMBV3
    from hwnas.supernet.evaluate import CALIB_SEED, calibration_indices, evaluate_subnet, recalibrate_bn
    from hwnas.supernet.extract import extract

    ds = FolderDataset(fmnist_folder, workers=2)
    try:
        sp = space_for_dataset("tiny-mbv3", ds)  # 64-px images: tiny-mbv3's 16..28 px fit under the crop
        assert (sp.in_channels, sp.n_classes, sp.resolutions) == (3, 10, (16, 20, 24, 28))
        assert get_dataset(fmnist_folder, sp.name).classes == ds.classes
        net = randomize_(ElasticMBV3(sp))
        a = sp.sample(np.random.default_rng(3), [24])
        tr, va = ds.splits("train", "val")
        acc = evaluate_subnet(net, a, tr, va, n_calib=100)
        assert 0.0 <= acc <= 100.0
        acc0 = evaluate_subnet(net, a, *FolderDataset(fmnist_folder, workers=0).splits("train", "val"), n_calib=100)
        assert acc0 == acc
        # BN statistics are the averages of per-batch statistics of train-mode (augmented) batches
        static = extract(net, a)
        recalibrate_bn(static, tr, a, n_images=100, batch_size=50)
        means, vars_ = [], []
        for x, _ in tr.batches(a.r, 50, train=True, seed=CALIB_SEED, indices=calibration_indices(len(tr), 100)):
            with torch.no_grad():
                y = static.first_conv.conv(torch.from_numpy(x))
            means.append(y.mean((0, 2, 3)))
            vars_.append(y.var((0, 2, 3), unbiased=False))
        assert torch.allclose(static.first_conv.bn.running_mean, torch.stack(means).mean(0), atol=1e-5)
        assert torch.allclose(static.first_conv.bn.running_var, torch.stack(vars_).mean(0), atol=1e-5)
    finally:
        ds.close()


RESUME = """
import sys
from hwnas.datasets.folder import FolderDataset
from hwnas.supernet.train import TrainConfig, train_supernet
if __name__ == "__main__":
    root, out, cfg = sys.argv[1], sys.argv[2], TrainConfig.from_dict(__import__("json").loads(sys.argv[3]))
    tr, va = FolderDataset(root, workers=1).splits("train", "val")
    train_supernet(cfg, tr, va, out, resume=True)  # the derived space is registered from last.pt
"""


@pytest.mark.data
def test_finetune_a_tiny_supernet_from_init_on_a_folder(fmnist_folder, tmp_path):
    import json
    import subprocess
    import sys

    from safetensors.torch import load_file

    from conftest import randomize_
    from hwnas.supernet import load_supernet
    from hwnas.supernet.derive import derive_space, space_for_dataset
    from hwnas.supernet.elastic import ElasticMBV3
    from hwnas.supernet.train import TrainConfig, train_supernet

    # "pretrained on a 1000-class dataset": a 3-channel tiny super-network in the OFA file layout
    big = derive_space("tiny-mbv3", 3, 1000, name="tiny-mbv3-pretrained-1000c")
    src = randomize_(ElasticMBV3(big), seed=4)
    state = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
             for k, v in src.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 100}, tmp_path / "pretrained")
    ds = FolderDataset(fmnist_folder, workers=1)
    sp = space_for_dataset(big, ds, name="tiny-mbv3-finetune-test")
    tr, va = ds.splits("train", "val")
    cfg = TrainConfig(space=sp.name, epochs=1, batch_size=48, lr=0.01, warmup_epochs=0, n_random=1, seed=0,
                      threads=1, init=str(tmp_path / "pretrained"))
    out = tmp_path / "run"
    w = train_supernet(cfg, tr, va, out)
    ds.close()
    log = json.loads((out / "train_log.json").read_text())
    assert "1000 classes" in log["init_notes"][0] and "classifier" in log["init_notes"][0]
    assert len(log["history"]) == 1 and np.isfinite(log["history"][0]["train_loss_max"])
    tuned = load_file(str(w))
    assert tuned["classifier.linear.weight"].shape == (10, sp.feature_mix_width)
    for k in ("first_conv.conv.weight", "blocks.3.conv.depth_conv.conv.conv.weight"):
        start = src.state_dict()[k]
        assert 0 < (tuned[k] - start).norm() < 0.2 * start.norm(), k  # moved, from the checkpoint
    # resume in a fresh process, where the derived space is not registered
    r = subprocess.run([sys.executable, "-c", RESUME, str(fmnist_folder), str(out),
                        json.dumps({**cfg.to_dict(), "epochs": 2})], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [h["epoch"] for h in json.loads((out / "train_log.json").read_text())["history"]] == [1, 2]
    net, source = load_supernet(sp.name, w)
    assert net.space == sp and "supernet.safetensors" in source
    from hwnas.supernet.modelcard import write_model_card

    card = json.loads(write_model_card(w, command="hwnas train-supernet ...", data_dir=fmnist_folder,
                                       n_random=1).read_text())
    assert card["space"] == sp.name and card["data"]["name"] == "image-folder" and card["data"]["test_is_val"]
    assert "1000 classes" in card["init"]["notes"][0] and card["epochs_done"] == 2
    assert 0 <= card["evaluation"]["subnets"]["largest"]["test_top1"] <= 100
