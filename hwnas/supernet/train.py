"""Super-network training with the sandwich rule and in-place distillation (BigNAS).

Each step trains, on one augmented batch:
  * the largest subnet on the labels (label-smoothed cross-entropy);
  * the smallest subnet and ``n_random`` random subnets on the largest one's soft
    outputs (in-place distillation), each at its own resolution.
Gradients of all subnets accumulate; one optimiser step follows (SGD + Nesterov,
cosine schedule with a linear warm-up, no weight decay on BN and biases).

Data comes through :meth:`Split.batches(..., train=True) <hwnas.datasets.base.Split.batches>`
at the space's largest resolution — the dataset's own augmentation (for an image folder OFA's
random resized crop, flip and colour jitter, decoded by worker processes) — and each smaller
subnet sees the same batch resized (bilinear, antialiased). Fashion-MNIST training is
numerically what it was when it indexed the arrays directly.

Fine-tuning: ``init`` names a checkpoint (an official OFA file, hwnas safetensors) loaded
before the first step — everything but a classifier of another class count, which starts
fresh — so a super-network trained on ImageNet is adapted to the user's classes with the same
sandwich rule and in-place distillation (OFA's transfer recipe), usually with a smaller ``lr``.

Resumable: the full training state (weights, optimiser, epoch, RNG) is written
atomically after every epoch to ``out/last.pt``; ``resume=True`` continues from it,
so a killed run loses at most the epoch in flight. The checkpoint contains only
tensors and plain values and is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.datasets.base import Split
from hwnas.errors import CheckpointError, ConfigError
from hwnas.fileio import atomic_write_json
from hwnas.registry import SPACES
from hwnas.supernet.elastic import ElasticMBV3
from hwnas.supernet.evaluate import evaluate_subnet
from hwnas.supernet.spaces import get_space


@dataclass(frozen=True)
class TrainConfig:
    space: str = "fmnist-mbv3"
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    n_random: int = 2
    kd_temperature: float = 1.0
    grad_clip: float = 5.0
    seed: int = 0
    train_limit: int = 0  # use only N training images, a fixed seeded draw (0 = all); for quick runs and tests
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    init: str = ""  # checkpoint to fine-tune from ("" = train from OFA's random initialisation)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


# Fields that may change on resume without changing what is being trained.
_RESUMABLE_CHANGES = {"epochs", "threads"}


def _param_groups(net: torch.nn.Module, wd: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith("_matrix") else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


LIMIT_SEED = 20240611  # fixes which images a train_limit keeps


def _pool(n: int, limit: int) -> np.ndarray:
    """Indices of the training images used: all, or ``limit`` of them drawn by a fixed seed —
    not the first ``limit``, which in a class-ordered folder would be a few classes only."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(LIMIT_SEED).permutation(n)[:limit])


def _epoch_order(rng: np.random.Generator, pool: np.ndarray, batch_size: int) -> np.ndarray:
    """The epoch's shuffled image order over ``pool``, cut to whole batches."""
    n = len(pool)
    return pool[rng.permutation(n)[: n - n % batch_size]]


def _space_def(sp) -> str:
    from hwnas.supernet.derive import space_to_dict

    return json.dumps(space_to_dict(sp))


def _register_from_state(space: str, st: dict) -> None:
    """A derived space is not in the registry of a new process: take its definition from the run."""
    if space not in SPACES and "space_def" in st:
        from hwnas.supernet.derive import register_space, space_from_dict

        register_space(space_from_dict(json.loads(st["space_def"])))


def train_supernet(
    cfg: TrainConfig,
    train: Split,
    val: Split,
    out: str | os.PathLike,
    resume: bool = False,
    device: str | None = None,
    on_step: Callable[[int, int, int, float], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> Path:
    """Train (or continue training) and return the path of the final ``supernet.safetensors``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "last.pt"
    for stale in out.glob("*.pt.tmp"):  # a kill during a save leaves its half-written temp file: never read, removed
        stale.unlink()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    st = None
    if state_path.exists():
        if not resume:
            raise ConfigError(f"'{out}' already holds a training run: pass --resume to continue it or choose a new --out.")
        try:
            st = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"Cannot read '{state_path}' ({type(exc).__name__}); delete it to restart.") from None
        _register_from_state(cfg.space, st)
    sp = get_space(cfg.space)
    torch.manual_seed(cfg.seed)
    net = ElasticMBV3(sp).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(_param_groups(net, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    start_epoch, elapsed, history, init_notes = 0, 0.0, [], []
    if st is not None:
        old = TrainConfig.from_dict(json.loads(st["config"]))
        diff = {k: (getattr(old, k), getattr(cfg, k)) for k in cfg.to_dict()
                if getattr(old, k) != getattr(cfg, k) and k not in _RESUMABLE_CHANGES}
        if diff:
            raise ConfigError(
                f"Cannot resume '{out}' with a different configuration: "
                + ", ".join(f"{k} was {a} now {b}" for k, (a, b) in diff.items())
                + ". Use the original options or a new --out."
            )
        from hwnas.supernet.ofa_checkpoint import check_finite

        check_finite(st["model"], f"Training state '{state_path}'")
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        start_epoch, elapsed = int(st["epoch"]), float(st["elapsed_s"])
        history = json.loads(st["history"])
        init_notes = json.loads(st.get("init_notes", "[]"))
    elif resume:
        raise ConfigError(f"Nothing to resume in '{out}' (no last.pt); drop --resume to start.")
    elif cfg.init:
        from hwnas.supernet.ofa_checkpoint import load_file_into

        init_notes = load_file_into(net, cfg.init)  # copies into the parameters the optimiser holds

    pool = _pool(len(train), cfg.train_limit)
    n_train = len(pool)
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"Batch size {cfg.batch_size} exceeds the {n_train} training images.")
    min_a, max_a = sp.min_arch(), sp.max_arch()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        rng = np.random.default_rng([cfg.seed, epoch])
        aug_seed = int(rng.integers(2**62))
        order = _epoch_order(rng, pool, cfg.batch_size)
        net.train()
        loss_sum = 0.0
        data = train.batches(max_a.r, cfg.batch_size, train=True, seed=aug_seed, indices=order)
        for step, (x, y) in enumerate(data):
            g_step = epoch * steps_per_epoch + step
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, g_step, steps_per_epoch)
            x_max, y = torch.from_numpy(x), torch.as_tensor(y).to(dev)
            opt.zero_grad(set_to_none=True)
            logits = net(x_max.to(dev).contiguous(memory_format=torch.channels_last), max_a)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            loss.backward()
            loss_sum += loss.item()
            soft = F.softmax(logits.detach() / cfg.kd_temperature, dim=1)
            students = [min_a] + [sp.sample(rng) for _ in range(cfg.n_random)]
            for a in students:
                # the same augmented images, resized for this subnet
                xa = x_max if a.r == max_a.r else F.interpolate(
                    x_max, size=(a.r, a.r), mode="bilinear", align_corners=False, antialias=a.r < max_a.r)
                out_a = net(xa.to(dev).contiguous(memory_format=torch.channels_last), a)
                kd = -(soft * F.log_softmax(out_a / cfg.kd_temperature, dim=1)).sum(1).mean()
                kd.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            if on_step is not None:
                on_step(epoch, step, steps_per_epoch, loss.item())
        elapsed += time.time() - t0
        net.cpu()
        rec = {
            "epoch": epoch + 1,
            "train_loss_max": loss_sum / steps_per_epoch,
            "val_top1_min": evaluate_subnet(net, min_a, train, val),
            "val_top1_max": evaluate_subnet(net, max_a, train, val),
            "epoch_s": round(time.time() - t0, 1),
            "elapsed_s": round(elapsed, 1),
        }
        net.to(dev)
        history.append(rec)
        state = {
            "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "optimizer": opt.state_dict(),
            "epoch": epoch + 1,
            "elapsed_s": elapsed,
            "config": json.dumps(cfg.to_dict()),
            "history": json.dumps(history),
            "space_def": _space_def(sp),
            "init_notes": json.dumps(init_notes),
        }
        _atomic_save(state, state_path)
        log = {"config": cfg.to_dict(), "history": history, "data": _describe(train), "init_notes": init_notes}
        atomic_write_json(out / "train_log.json", log)
        if on_epoch is not None:
            on_epoch(rec)
    return save_weights(net.cpu(), out / "supernet.safetensors", cfg, history, dev)


def _describe(split: Split) -> dict:
    return {"split": split.name, "images": len(split)}


def train_standalone(arch, train: Split, epochs: int = 2, batch_size: int = 256, lr: float = 0.1,
                     weight_decay: float = 5e-5, label_smoothing: float = 0.1, seed: int = 0,
                     train_limit: int = 0, device: str | None = None):
    """Train one subnet from scratch (no super-network), with the same augmentation and
    schedule shape as :func:`train_supernet`. Used to check that the super-network ranks
    subnets like stand-alone training does. Returns the static network in eval mode."""
    from hwnas.supernet.static import StaticMBV3, init_weights

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    sp = get_space(arch.space)
    net = StaticMBV3(sp.layers(arch))
    init_weights(net)  # the same initialisation as the super-network
    net = net.to(dev).to(memory_format=torch.channels_last)
    cfg = TrainConfig(space=arch.space, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      label_smoothing=label_smoothing, seed=seed)
    opt = torch.optim.SGD(_param_groups(net, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    pool = _pool(len(train), train_limit)
    steps = len(pool) // batch_size
    for epoch in range(epochs):
        rng = np.random.default_rng([seed, epoch, 1])
        aug_seed = int(rng.integers(2**62))
        order = _epoch_order(rng, pool, batch_size)
        net.train()
        for step, (x, y) in enumerate(train.batches(arch.r, batch_size, train=True, seed=aug_seed, indices=order)):
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, epoch * steps + step, steps)
            x, y = torch.from_numpy(x), torch.as_tensor(y).to(dev)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x.to(dev).contiguous(memory_format=torch.channels_last)), y,
                                   label_smoothing=label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
    return net.cpu().eval()


def save_weights(net: ElasticMBV3, path: Path, cfg: TrainConfig, history: list, dev) -> Path:
    """Write the weights as safetensors (fp32) with the training facts in its metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    meta = {
        "space": cfg.space,
        "space_def": _space_def(net.space),
        "config": json.dumps(cfg.to_dict()),
        "epochs_done": str(len(history)),
        "hardware": f"{platform.processor() or platform.machine()} ({dev})",
    }
    save_file(state, str(path), metadata=meta)
    return path
