"""Does an image folder feed the network as fast as the network evaluates? Decoding vs inference.

Writes an ImageNet-style JPEG folder (``--images`` files of 500x375 px, 10 classes, quality 90):
Fashion-MNIST objects upsampled and coloured on a textured background with film grain, so the
files are about as large as ImageNet's validation JPEGs (~128 KB average at about this size) —
or synthetic textures where Fashion-MNIST is absent. Then, each figure repeated ``--repeats``
times (median and spread (max-min)/median):

1. decoding: images/s through OFA's evaluation transform (r=224) and through its training
   transform (BN recalibration) with 0 (in-process), 1 and 2 worker processes, no network;
2. the network alone: images/s of the ofa-mbv3-w1.0 min and max subnets at r=224 (fresh
   weights, BN recalibrated on 100 of the images), torch, eval mode, batch 50, on inputs already
   in memory;
3. end to end: top-1 evaluation through the folder (decoding in workers while the network runs
   in the main process) for the same subnets with 1 and 2 workers — the figure that says
   whether evaluation runs at the speed of the network or of the decoder.

    python benchmarks/data.py [--images 400] [--repeats 3] [--workers 0 1 2] [--folder DIR] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

W, H = 500, 375
BATCH = 50
R = 224


def write_folder(root: Path, n: int, seed: int = 0) -> str:
    """``n`` JPEGs in ``root/{train,val}/<class>/``; returns what the content is."""
    from PIL import Image, ImageFilter

    from hwnas.datasets.fashion_mnist import FashionMNIST, available

    rng = np.random.default_rng(seed)
    fm = FashionMNIST().split("train-full") if available() else None
    classes = [f"class{k}" for k in range(10)]
    for i in range(n):
        split = "val" if (i // 10) % 5 == 0 else "train"
        k = i % 10
        yy, xx = np.mgrid[0:H, 0:W] / W
        phase, freq = rng.uniform(0, 6, 3), rng.uniform(2, 9, 3)
        bg = np.stack([np.sin(f * xx + 0.7 * f * yy + p) for f, p in zip(freq, phase)], -1) * 50 + 120
        noise = np.asarray(Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).filter(
            ImageFilter.GaussianBlur(1.5)), dtype=np.float32) - 127
        img = bg + 4.0 * noise
        if fm is not None:
            obj = fm.images[np.flatnonzero(fm.labels == k)[i // 10], 0]
            side = int(rng.integers(200, 340))
            mask = np.asarray(Image.fromarray(obj).resize((side, side), Image.BILINEAR), np.float32)[..., None] / 255
            top, left = int(rng.integers(0, H - side)), int(rng.integers(0, W - side))
            tint = rng.uniform(60, 255, 3)
            patch = img[top:top + side, left:left + side]
            img[top:top + side, left:left + side] = patch * (1 - mask) + tint * mask
        img += rng.normal(0, 12, img.shape)  # film grain: about the JPEG entropy of a photograph
        d = root / split / classes[k]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{i:05d}.jpg", quality=90)
    if fm is not None:
        return "Fashion-MNIST objects upsampled to 200-340 px and coloured, on sinusoid + blurred-noise backgrounds"
    return "sinusoid + blurred-noise textures (Fashion-MNIST absent)"


def spread(xs: list[float]) -> float:
    return float((max(xs) - min(xs)) / np.median(xs))


def summary(xs: list[float]) -> dict:
    return {"median": float(np.median(xs)), "runs": [round(x, 1) for x in xs], "spread": spread(xs)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--folder", type=Path, default=None, help="reuse (or write once into) this folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    import torch

    from hwnas.datasets.folder import FolderDataset
    from hwnas.devices.base import host_facts
    from hwnas.supernet.elastic import ElasticMBV3
    from hwnas.supernet.evaluate import CALIB_SEED, predict, recalibrate_bn
    from hwnas.supernet.extract import extract

    t_start = time.time()
    root = args.folder or Path(tempfile.mkdtemp(prefix="hwnas-data-bench-"))
    content = "existing folder"
    if not (root / "train").is_dir():
        content = write_folder(root, args.images, args.seed)
    files = sorted(root.rglob("*.jpg"))
    kb = float(np.mean([f.stat().st_size for f in files]) / 1024)
    print(f"{len(files)} JPEGs {W}x{H} in {root}: {content}; mean {kb:.0f} KB", flush=True)
    result: dict = {"host": host_facts(), "torch_threads": torch.get_num_threads(), "images": len(files),
                    "image_px": [W, H], "mean_file_kb": kb, "content": content, "resolution": R, "batch": BATCH,
                    "repeats": args.repeats, "decode": {}, "network": {}, "end_to_end": {}}

    def timed(fn) -> float:
        t = time.perf_counter()
        n = fn()
        return n / (time.perf_counter() - t)

    def drain(split, **kw) -> int:
        return sum(len(y) for _, y in split.batches(R, BATCH, **kw))

    # every repeat visits every configuration, so slow drift of a shared machine hits them alike
    sets = {w: FolderDataset(root, workers=w) for w in args.workers}
    try:
        for w, ds in sets.items():
            drain(ds.split("train"))  # start the workers, warm the page cache
        runs: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for w, ds in sets.items():
                for mode, kw in (("eval", {}), ("train", {"train": True, "seed": CALIB_SEED})):
                    runs.setdefault(f"{mode}-w{w}", []).append(timed(lambda: drain(ds.split("train"), **kw)))
        for k, v in runs.items():
            result["decode"][k] = summary(v)
            print(f"decode {k.split('-')[0]:5s} transform, {k.split('-w')[1]} worker(s): {np.median(v):7.1f} "
                  f"images/s (spread {spread(v):.1%})", flush=True)

        sup = ElasticMBV3("ofa-mbv3-w1.0").eval()
        sp = sup.space
        x_mem = sets[args.workers[0]].split("train").inputs(R, 4 * BATCH)
        for name, arch in (("min", sp.min_arch(R)), ("max", sp.max_arch(R))):
            net = extract(sup, arch).eval()
            # BN recalibrated as evaluation does: a fresh network's activations shrink to ~1e-11
            # through the blocks, and values near the denormal range would time something else
            recalibrate_bn(net, sets[args.workers[-1]].split("train"), arch, n_images=2 * BATCH, batch_size=BATCH)
            images = {w: ds.split("train") for w, ds in sets.items() if w > 0}

            def alone() -> int:
                with torch.no_grad():
                    for b in range(0, len(x_mem), BATCH):
                        net(torch.from_numpy(x_mem[b:b + BATCH]))
                return len(x_mem)

            alone()  # warm-up
            net_runs, e2e_runs, ratios = [], {w: [] for w in images}, {w: [] for w in images}
            for _ in range(args.repeats):
                net_runs.append(timed(alone))
                for w, split in images.items():
                    e2e_runs[w].append(timed(lambda: len(predict(net, split, arch, BATCH)[1])))
                    ratios[w].append(e2e_runs[w][-1] / net_runs[-1])
            result["network"][name] = {**summary(net_runs), "arch": arch.to_str(), "macs_m": sp.macs(arch) / 1e6}
            print(f"network {name} subnet ({sp.macs(arch) / 1e6:.0f} MMACs): {np.median(net_runs):7.1f} images/s "
                  f"(spread {spread(net_runs):.1%})", flush=True)
            for w in images:
                ratio = float(np.median(ratios[w]))
                result["end_to_end"][f"{name}-w{w}"] = {**summary(e2e_runs[w]), "of_network": ratio,
                                                        "of_network_runs": [round(r, 3) for r in ratios[w]]}
                print(f"evaluate {name} subnet through the folder, {w} worker(s): {np.median(e2e_runs[w]):7.1f} "
                      f"images/s = {ratio:.0%} of the network alone in the same repeat (ratios "
                      f"{' '.join(f'{r:.0%}' for r in ratios[w])}; spread {spread(e2e_runs[w]):.1%})", flush=True)
    finally:
        for ds in sets.values():
            ds.close()
    result["wall_s"] = round(time.time() - t_start, 1)

    allspread = [v["spread"] for part in ("decode", "network", "end_to_end") for v in result[part].values()]
    lines = [f"# Data loading vs network throughput: ofa-mbv3-w1.0 at r={R}, batch {BATCH}",
             f"host: {result['host']['cpu']}, {result['host']['logical_cores']} logical cores, torch "
             f"{result['torch_threads']} threads; {len(files)} JPEGs {W}x{H}, mean {kb:.0f} KB ({content}); "
             f"each figure the median of {args.repeats} runs", "",
             "| what | images/s | runs | spread |", "|---|---|---|---|"]
    for part, label in (("decode", "decode + {k} (no network)"), ("network", "network {k} subnet alone"),
                        ("end_to_end", "evaluate {k} through the folder")):
        for k, v in result[part].items():
            extra = (f" ({v['of_network']:.0%} of the network in the same repeat)" if "of_network" in v else "")
            lines.append(f"| {label.format(k=k)} | {v['median']:.1f}{extra} | "
                         f"{' '.join(f'{x:.1f}' for x in v['runs'])} | {v['spread']:.1%} |")
    lines += ["", f"- noise: spread (max-min)/median over {args.repeats} runs: median {np.median(allspread):.1%}, "
              f"worst {max(allspread):.1%}", f"- wall time {result['wall_s']:.0f} s"]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data.json").write_text(json.dumps(result, indent=1, default=float))
    (args.out / "data.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
