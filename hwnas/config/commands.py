"""The configs of the smaller commands: listings, one-model measurements, latency and accuracy models,
super-network training and evaluation. Same contract as the job configs (see :mod:`hwnas.config.base`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hwnas.config.base import Config, data_option, option


@dataclass(frozen=True)
class SpacesConfig(Config):
    """List the search spaces."""

    KIND = "spaces"
    pattern: str = option("*", "Only spaces matching this shell pattern.")


@dataclass(frozen=True)
class DevicesConfig(Config):
    """List every device backend, whether it works here, and how to install it if not."""

    KIND = "devices"
    pattern: str = option("*", "Only devices matching this shell pattern.")
    cluster: Optional[str] = option(None, "Also list the boards of the Ray cluster at HEAD:PORT (each board reports "
                                          "its own runtimes); 'env' for RAY_ADDRESS.")


@dataclass(frozen=True)
class ArchQueryConfig(Config):
    """Print one arch string that every --arch option accepts."""

    KIND = "arch"
    which: Optional[str] = option(None, "sample | min | max", argument=True, required=True)
    space: Optional[str] = option(None, "Search space.", required=True)
    seed: int = option(0, "Seed for 'sample'.")
    resolution: Optional[int] = option(None, "Input resolution.", short="-r")


@dataclass(frozen=True)
class ExportSubnetConfig(Config):
    """Extract a subnet and export it to ONNX."""

    KIND = "export-subnet"
    arch: Optional[str] = option(None, "Arch string, JSON dict or JSON file.", required=True)
    out: Optional[Path] = option(None, "ONNX file to write.", required=True)
    space: Optional[str] = option(None, "Search space (if the arch string does not name it).")
    checkpoint: Optional[Path] = option(None, "Super-network weights (default: shipped, else random).")
    batch_size: int = option(1, "Batch size of the exported graph.")


@dataclass(frozen=True)
class MeasureConfig(Config):
    """Measure latency and peak memory of an ONNX model on a device."""

    KIND = "measure"
    model: Optional[Path] = option(None, "ONNX model.", argument=True, required=True)
    device: str = option("onnxruntime-cpu", "Device backend (see 'hwnas devices'), or BACKEND@BOARD on a Ray "
                                            "cluster.")
    threads: int = option(1, "Runtime threads.")
    runs: int = option(100, "Timed runs (plain timing).")
    budget_s: float = option(2.0, "Time budget for the timed runs.")
    bursts: int = option(6, "Interleaved bursts with the reference model.")
    reference: str = option("auto", "auto | none | ref-small | ref-medium | ref-large.")
    cluster: Optional[str] = option(None, "Ray cluster of remote boards, HEAD:PORT (for a BACKEND@BOARD --device; "
                                          "default: RAY_ADDRESS).")


@dataclass(frozen=True)
class ProfileInfoConfig(Config):
    """What a profile holds: device, host, spaces, rows, repeatability, energy, fitted models."""

    KIND = "profile-info"
    profile: Optional[Path] = option(None, "Profile directory.", argument=True, required=True)


@dataclass(frozen=True)
class ProfileMergeConfig(Config):
    """Merge two profiles of the same device (rows rescaled to the destination's reference latencies)."""

    KIND = "profile-merge"
    dst: Optional[Path] = option(None, "Profile to extend.", argument=True, required=True)
    src: Optional[Path] = option(None, "Profile of the same device to take rows from.", argument=True, required=True)


@dataclass(frozen=True)
class FitConfig(Config):
    """Fit models on a profile's end-to-end rows and store them in it, with cross-validated metrics."""

    KIND = "fit"
    profile: Optional[Path] = option(None, "Profile directory.", argument=True, required=True)
    model: tuple[str, ...] = option(("hybrid",), "Model to fit (repeatable; see 'hwnas evaluate').")
    target: str = option("latency_ms", "latency_ms | energy_mj | memory_mb (measured peak) | analytic_memory_mb.")
    space: Optional[str] = option(None, "Space (if the profile holds several).")
    active: bool = option(False, "Measure more samples where the model is worst first (needs the profile's device "
                                 "here).")
    goal: float = option(0.95, "Active sampling: stop at this cross-validated share within ±10 %.")
    budget_s: float = option(600.0, "Active sampling: time budget (s).")
    batch: int = option(10, "Active sampling: subnets measured per round.")
    checkpoint: Optional[Path] = option(None, "Active sampling: super-network weights for export.")
    param: dict[str, str] = option(None, "Hyper-parameter KEY=VALUE for the model(s), e.g. base=kernel for hybrid "
                                         "(repeatable).")


@dataclass(frozen=True)
class PredictConfig(Config):
    """Predicted latency (and energy / memory where modelled) of subnets on the profile's device."""

    KIND = "predict"
    profile: Optional[Path] = option(None, "Profile directory with fitted models ('hwnas fit').", argument=True,
                                     required=True)
    arch: tuple[str, ...] = option((), "Arch string, JSON dict or JSON file (repeatable).", required=True)
    model: Optional[str] = option(None, "Model name (default: the best stored one per target).")
    space: Optional[str] = option(None, "Space (if the arch string does not name it).")
    device: Optional[str] = option(None, "Device to predict for (default: the profile's; calibrated on it first).")
    threads: Optional[int] = option(None, "Runtime threads of --device (default: the profile's).")
    calibrate: bool = option(True, "Check the profile on the device first; --no-calibrate prints the profile's "
                                   "own figures, marked uncalibrated.")
    coverage: float = option(0.9, "Nominal coverage of the prediction intervals.")
    checkpoint: Optional[Path] = option(None, "Super-network weights for the calibration subnets (default: shipped).")


@dataclass(frozen=True)
class EvaluateConfig(Config):
    """Score models on rows never used to fit: RMSE, MAPE, ±5/±10 %, Kendall τ, Spearman."""

    KIND = "evaluate"
    profile: Optional[Path] = option(None, "Profile directory.", argument=True, required=True)
    models: tuple[str, ...] = option(("flops", "lut", "kernel", "e2e", "hybrid"), "Models to compare (comma list).")
    target: str = option("latency_ms", "latency_ms | energy_mj | memory_mb | analytic_memory_mb.")
    space: Optional[str] = option(None, "Space (if the profile holds several).")
    folds: int = option(5, "Cross-validation folds when the profile has no holdout rows.")
    plots: Optional[Path] = option(None, "Folder for a predicted-vs-measured PNG per model (none by default).")


@dataclass(frozen=True)
class TrainSupernetConfig(Config):
    """Train a super-network with the sandwich rule and in-place distillation (resumable)."""

    KIND = "train-supernet"
    out: Optional[Path] = option(None, "Checkpoint folder.", required=True)
    space: str = option("fmnist-mbv3", "Search space to train; with an image folder --data, the space whose blocks "
                                       "a space for the folder's classes and image size is derived from.")
    data: Optional[str] = option(None, "Dataset name or folder (default: the space's).")
    data_options: dict[str, str] = data_option()
    space_name: Optional[str] = option(None, "Name of the space derived for --data (default: SPACE-<classes>c-r<lo>-"
                                             "<hi>).")
    init: Optional[Path] = option(None, "Fine-tune from these weights (an official OFA file or hwnas safetensors; "
                                        "a classifier of another class count starts fresh).")
    epochs: int = option(15, "Training epochs.")
    batch_size: int = option(256, "Images per step.")
    lr: float = option(0.1, "Peak learning rate (SGD + Nesterov, cosine).")
    seed: int = option(0, "Seed of the training run.")
    n_random: int = option(2, "Random subnets per step besides the largest and smallest.")
    train_limit: int = option(0, "Use only the first N training images (0 = all).")
    threads: int = option(0, "torch CPU threads (0 = torch's default).")
    resume: bool = option(False, "Continue the run in --out.")


@dataclass(frozen=True)
class EvalSubnetConfig(Config):
    """Top-1 of one subnet: extract it, recalibrate its BN on training images, evaluate."""

    KIND = "eval-subnet"
    arch: Optional[str] = option(None, "Arch string, JSON dict or JSON file.", required=True)
    space: Optional[str] = option(None, "Search space (if the arch string does not name it).")
    checkpoint: Optional[Path] = option(None, "Super-network weights (default: the shipped ones).")
    split: str = option("val", "val (model selection) or test (final reporting).")
    data: Optional[str] = option(None, "Dataset name or folder (default: the space's).")
    data_options: dict[str, str] = data_option()
    calib_images: int = option(2000, "Training images for BN recalibration.")


@dataclass(frozen=True)
class AccuracyDatasetConfig(Config):
    """Evaluate subnets on the super-network (BN recalibrated, validation split) into a reusable dataset."""

    KIND = "accuracy-dataset"
    space: Optional[str] = option(None, "Search space.", required=True)
    out: Optional[Path] = option(None, "Parquet file (resumed if it exists).", required=True)
    n: int = option(500, "Subnets to evaluate.")
    checkpoint: Optional[Path] = option(None, "Super-network weights (default: shipped).")
    seed: int = option(0, "Seed of the sampled subnets.")
    data: Optional[str] = option(None, "Dataset name or folder (default: the space's).")
    data_options: dict[str, str] = data_option()
    calib_images: int = option(2000, "Training images for each subnet's BN recalibration.")


@dataclass(frozen=True)
class FitAccuracyConfig(Config):
    """Fit the accuracy predictor; report held-out Kendall τ and RMSE, then refit on everything."""

    KIND = "fit-accuracy"
    dataset: Optional[Path] = option(None, "Parquet written by 'hwnas accuracy-dataset'.", argument=True,
                                     required=True)
    out: Optional[Path] = option(None, "Predictor JSON to write.", required=True)
    data: Optional[str] = option(None, "Dataset name or folder the accuracy dataset was built on (checked against "
                                       "the file's record; recorded for a file that has none).")
    data_options: dict[str, str] = data_option()
    holdout: int = option(100, "Subnets held out to report Kendall τ / RMSE.")
    seed: int = option(0, "Seed of the hold-out split and the model.")


@dataclass(frozen=True)
class DeviceJoinConfig(Config):
    """Join this machine to a Ray cluster as a board: advertise its name, kind and the runtimes it has."""

    KIND = "device-join"
    board: Optional[str] = option(None, "Board name (unique in the cluster), e.g. orin-1.", required=True)
    address: Optional[str] = option(None, "Head of the Ray cluster, HEAD:PORT (default: RAY_ADDRESS).")
    board_kind: Optional[str] = option(None, "Kind of board (boards of one kind form a fleet), e.g. orin.",
                                       flag="--kind")
    num_cpus: int = option(0, "CPUs this node offers to other Ray work (0: only hwnas measures here).")
    node_ip: Optional[str] = option(None, "This node's address as the head reaches it (default: Ray's choice).")
    block: bool = option(True, "Stay in the foreground until stopped (Ctrl-C leaves the cluster).")
