"""Super-network commands: ``train-supernet`` and ``eval-subnet``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console, echo_json, parse_arch


@app.command("train-supernet")
def train_supernet_cmd(
    space: str = typer.Option("fmnist-mbv3", help="Search space to train."),
    data: Optional[Path] = typer.Option(None, help="Fashion-MNIST folder (default: the Debian package's)."),
    epochs: int = typer.Option(15, help="Training epochs."),
    batch_size: int = typer.Option(256),
    lr: float = typer.Option(0.1, help="Peak learning rate (SGD + Nesterov, cosine)."),
    seed: int = typer.Option(0),
    n_random: int = typer.Option(2, help="Random subnets per step besides the largest and smallest."),
    train_limit: int = typer.Option(0, help="Use only the first N training images (0 = all)."),
    threads: int = typer.Option(0, help="torch CPU threads (0 = default)."),
    out: Path = typer.Option(..., help="Checkpoint folder."),
    resume: bool = typer.Option(False, help="Continue the run in --out."),
) -> None:
    """Train a super-network with the sandwich rule and in-place distillation."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwnas.datasets import get_dataset
    from hwnas.supernet.modelcard import write_model_card
    from hwnas.supernet.train import TrainConfig, train_supernet


    cfg = TrainConfig(space=space, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, n_random=n_random,
                      train_limit=train_limit, threads=threads)
    train, val = get_dataset(data, space).splits("train", "val")
    con = console()
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=con) as prog:
        task = prog.add_task("train", total=1, epoch=0, loss=0.0)

        def on_step(epoch: int, step: int, n: int, loss: float) -> None:
            prog.update(task, completed=step + 1, total=n, epoch=epoch + 1, loss=loss)

        def on_epoch(rec: dict) -> None:
            prog.console.print(
                f"epoch {rec['epoch']}: val top-1 smallest {rec['val_top1_min']:.2f} %, largest "
                f"{rec['val_top1_max']:.2f} %, {rec['epoch_s']:.0f} s"
            )

        weights = train_supernet(cfg, train, val, out, resume=resume, on_step=on_step, on_epoch=on_epoch)
    card = write_model_card(weights, command=" ".join(["hwnas"] + sys.argv[1:]), data_dir=data)
    con.print(f"weights: {weights}\nmodel card: {card}")


@app.command("eval-subnet")
def eval_subnet_cmd(
    arch: str = typer.Option(..., help="Arch string, JSON dict or JSON file."),
    space: Optional[str] = typer.Option(None, help="Search space (if the arch string does not name it)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Super-network weights (default: the shipped ones)."),
    split: str = typer.Option("val", help="val (model selection) or test (final reporting)."),
    data: Optional[Path] = typer.Option(None, help="Fashion-MNIST folder (default: the Debian package's)."),
    calib_images: int = typer.Option(2000, help="Training images for BN recalibration."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Top-1 of one subnet: extract it, recalibrate its BN on training images, evaluate."""
    import time

    from hwnas.errors import ConfigError
    from hwnas.supernet import load_supernet
    from hwnas.datasets import get_dataset
    from hwnas.supernet.evaluate import evaluate_subnet
    from hwnas.supernet.spaces import get_space

    if split not in ("val", "test"):
        raise ConfigError(f"--split must be val or test, got '{split}'.")
    a = parse_arch(arch, space)
    train, evald = get_dataset(data, a.space).splits("train", split)
    net, source = load_supernet(a.space, checkpoint, allow_random=False)
    t0 = time.time()
    acc = evaluate_subnet(net, a, train, evald, calib_images)
    sp = get_space(a.space)
    out = {"arch": a.to_str(), "split": split, "top1": round(acc, 2), "images": len(evald),
           "bn_calibration_images": calib_images, "macs": sp.macs(a), "params": sp.params(a),
           "weights": source, "seconds": round(time.time() - t0, 2)}
    if as_json:
        echo_json(out)
    else:
        console().print(f"{out['arch']}: top-1 {out['top1']:.2f} % on {split} ({len(evald)} images, "
                        f"BN recalibrated on {calib_images}); {out['macs'] / 1e6:.2f} MMACs, "
                        f"{out['params']:,} params")
