"""``hwnas train-supernet``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console


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

    from hwnas.supernet.data import load_fmnist_split
    from hwnas.supernet.modelcard import write_model_card
    from hwnas.supernet.train import TrainConfig, train_supernet

    cfg = TrainConfig(space=space, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, n_random=n_random,
                      train_limit=train_limit, threads=threads)
    train, val = load_fmnist_split("train", data), load_fmnist_split("val", data)
    console = console()
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console) as prog:
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
    console.print(f"weights: {weights}\nmodel card: {card}")
