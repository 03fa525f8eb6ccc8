"""Super-network commands: ``train-supernet`` and ``eval-subnet``."""

from __future__ import annotations

import sys

from hwnas.cli import Output, command
from hwnas.config import EvalSubnetConfig, TrainSupernetConfig


@command("train-supernet", TrainSupernetConfig)
def train_supernet_cmd(cfg: TrainSupernetConfig, out: Output) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwnas.datasets import open_dataset
    from hwnas.supernet.derive import space_to_train
    from hwnas.supernet.modelcard import write_model_card
    from hwnas.supernet.train import TrainConfig, train_supernet

    ds = open_dataset(cfg.data, cfg.space if cfg.data is None else None, cfg.data_options)
    sp = space_to_train(cfg.space, ds, cfg.space_name)  # a folder's classes and image size: a derived space
    if sp.name != cfg.space:
        out.print(f"space {sp.name}: {sp.description}")
    tc = TrainConfig(space=sp.name, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                     n_random=cfg.n_random, train_limit=cfg.train_limit, threads=cfg.threads,
                     init=str(cfg.init) if cfg.init else "")
    ds.check_space(sp)
    train, val = ds.splits("train", "val")
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=out.console, disable=out.as_json) as prog:
        task = prog.add_task("train", total=1, epoch=0, loss=0.0)

        def on_step(epoch: int, step: int, n: int, loss: float) -> None:
            prog.update(task, completed=step + 1, total=n, epoch=epoch + 1, loss=loss)

        def on_epoch(rec: dict) -> None:
            out.print(f"epoch {rec['epoch']}: val top-1 smallest {rec['val_top1_min']:.2f} %, largest "
                      f"{rec['val_top1_max']:.2f} %, {rec['epoch_s']:.0f} s")

        weights = train_supernet(tc, train, val, cfg.out, resume=cfg.resume, on_step=on_step, on_epoch=on_epoch)
    card = write_model_card(weights, command=" ".join(["hwnas"] + sys.argv[1:]), data_dir=ds)
    if out.as_json:
        return out.json({"weights": str(weights), "model_card": str(card), "space": sp.name})
    out.print(f"space: {sp.name}\nweights: {weights}\nmodel card: {card}")


@command("eval-subnet", EvalSubnetConfig)
def eval_subnet_cmd(cfg: EvalSubnetConfig, out: Output) -> None:
    import time

    from hwnas.datasets import open_dataset
    from hwnas.errors import ConfigError
    from hwnas.supernet import load_supernet
    from hwnas.supernet.evaluate import evaluate_subnet
    from hwnas.supernet.spaces import get_space
    from hwnas.types import ArchConfig

    if cfg.split not in ("val", "test"):
        raise ConfigError(f"--split must be val or test, got '{cfg.split}'.")
    a = ArchConfig.parse(cfg.arch, cfg.space)
    ds = open_dataset(cfg.data, a.space, cfg.data_options)
    train, evald = ds.splits("train", cfg.split)
    net, source = load_supernet(a.space, cfg.checkpoint, allow_random=False)
    t0 = time.time()
    acc = evaluate_subnet(net, a, train, evald, cfg.calib_images)
    sp = get_space(a.space)
    res = {"arch": a.to_str(), "split": cfg.split, "top1": round(acc, 2), "images": len(evald),
           "bn_calibration_images": cfg.calib_images, "macs": sp.macs(a), "params": sp.params(a),
           "weights": source, "seconds": round(time.time() - t0, 2),
           "skipped_images": ds.describe().get("skipped", 0)}
    if out.as_json:
        return out.json(res)
    out.print(f"{res['arch']}: top-1 {res['top1']:.2f} % on {cfg.split} ({len(evald)} images, "
              f"BN recalibrated on {cfg.calib_images}); {res['macs'] / 1e6:.2f} MMACs, {res['params']:,} params"
              + (f"; {res['skipped_images']} undecodable image(s) skipped" if res["skipped_images"] else ""))
