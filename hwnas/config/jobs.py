"""The configs of the three jobs and their end-to-end run: profile, search, export, verify, quickstart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hwnas.config.base import Config, data_option, option


@dataclass(frozen=True)
class ProfileConfig(Config):
    """Measure a device: block table, end-to-end samples, reference set; resumable (re-run to continue)."""

    KIND = "profile"
    space: tuple[str, ...] = option((), "Search space to profile (repeat, or comma-separate, for several).",
                                    required=True)
    out: Optional[Path] = option(None, "Profile directory (created, or resumed if it holds this device's profile).",
                                 required=True)
    device: str = option("onnxruntime-cpu", "Device backend (see 'hwnas devices'); BACKEND@BOARD or BACKEND@KIND "
                                            "for boards of a Ray cluster (a fleet of one kind is measured in "
                                            "parallel).")
    threads: int = option(1, "Runtime threads (>= 1).")
    precision: str = option("fp32", "Inference precision of the device (e.g. bf16 on openvino-cpu where the CPU "
                                    "has it).")
    samples: int = option(100, "Random end-to-end subnets (stratified over size and resolution).")
    reference_set: int = option(20, "Fixed reference subnets (the same archs on every device).")
    repeats: int = option(10, "Reference subnets measured again at the end (repeatability).")
    holdout: int = option(0, "Extra subnets measured only to evaluate predictors ('hwnas evaluate'), alternating "
                             "with the samples; never used to fit.")
    resolutions: tuple[int, ...] = option((), "Block-table resolutions, e.g. 128,160,192,224 (default: every 16 px "
                                              "for large spaces, all for small).")
    ops: bool = option(True, "Measure the block/op table.")
    kernel_times: bool = option(True, "Record per-kernel times of the fused graph where the backend can.")
    energy: bool = option(True, "Measure energy where a meter exists.")
    quick: bool = option(False, "Short timing runs (smoke tests; numbers are noisier).")
    seed: int = option(0, "Seed of the random samples (the reference set never changes).")
    checkpoint: Optional[Path] = option(None, "Super-network weights (default: shipped, else random initialisation "
                                              "— latency does not depend on weight values).")
    device_options: dict[str, str] = option(None, "Device option KEY=VALUE (repeatable).", flag="--option")
    few_shot: int = option(0, "Profile a device never profiled from at most this many measurements plus the "
                              "--from profiles of other devices (a 'transfer' latency model); 0: a full profile.")
    from_profiles: tuple[Path, ...] = option((), "Source profiles of other devices for --few-shot (repeatable).",
                                             flag="--from")
    target_error: Optional[float] = option(None, "With --few-shot: keep measuring the subnets the model is least "
                                                 "sure of until the 90 % upper bound of its leave-one-out error "
                                                 "(MAPE) is below this, e.g. 0.05, and stop (never before 10 "
                                                 "measurements, or --few-shot N if smaller).")
    cluster: Optional[str] = option(None, "Ray cluster of remote boards, HEAD:PORT (for a BACKEND@BOARD --device; "
                                          "default: RAY_ADDRESS).")


@dataclass(frozen=True)
class SearchConfig(Config):
    """Multi-objective search under budgets, verified on the device (closed loop)."""

    KIND = "search"
    space: Optional[str] = option(None, "Search space.", required=True)
    profile: Optional[Path] = option(None, "Device profile directory (see 'hwnas profile'); read only — the closed "
                                           "loop's measurements go into the run directory.", required=True)
    out: Optional[Path] = option(None, "Run directory to write.", required=True)
    latency_budget_ms: Optional[float] = option(None, "Latency budget (ms).")
    memory_budget_mb: Optional[float] = option(None, "Peak-memory budget (MiB).")
    energy_budget_mj: Optional[float] = option(None, "Energy budget per inference (mJ).")
    objectives: tuple[str, ...] = option(("accuracy", "latency"),
                                         "Comma list of accuracy,latency,memory,energy,macs,params.")
    seed: int = option(0, "Seed of the search.")
    generations: int = option(40, "NSGA-II generations per round.")
    pop_size: int = option(60, "NSGA-II population.")
    closed_loop: bool = option(True, "Re-measure the best candidates on the device and repair.")
    top_k: int = option(3, "Candidates measured per round.")
    max_measurements: int = option(12, "Device measurements the closed loop may spend.")
    latency_model: Optional[str] = option(None, "Stored latency model to use (default: the best).")
    accuracy_predictor: Optional[Path] = option(None, "Accuracy predictor JSON (default: shipped).")
    checkpoint: Optional[Path] = option(None, "Super-network weights (default: shipped).")
    data: Optional[str] = option(None, "Dataset name or folder for the final accuracy check (default: the space's).")
    data_options: dict[str, str] = data_option()
    final_eval: int = option(3, "Final candidates evaluated on the super-network (validation split).")
    add_to_profile: bool = option(False, "Also add the closed loop's measurements to --profile (refused for a "
                                         "shipped profile or one measured on another host).")
    device: Optional[str] = option(None, "Device to search for (default: the profile's; the profile is calibrated "
                                         "on it first).")
    threads: Optional[int] = option(None, "Runtime threads of --device (default: the profile's).")
    calibrate: bool = option(True, "Check the profile on the device first (measures up to 20 subnets, about a "
                                   "minute, unless a fresh calibration exists); --no-calibrate marks every figure "
                                   "uncalibrated.")
    confidence: Optional[float] = option(None, "Only candidates that meet the latency budget with this confidence "
                                               "(e.g. 0.95, from the model's prediction intervals).")
    cluster: Optional[str] = option(None, "Ray cluster of remote boards, HEAD:PORT (for a BACKEND@BOARD --device; "
                                          "default: RAY_ADDRESS).")
    joint_precision: bool = option(False, "Search each block's precision (INT8/FP32) with the architecture; "
                                          "needs --latency-budget-ms and --int8-profile; the best pair is "
                                          "exported as a bundle in the run directory.")
    int8_profile: Optional[Path] = option(None, "With --joint-precision: a profile of the same device made with "
                                                "'hwnas profile --precision int8' (its block table prices INT8 "
                                                "blocks; --profile's block table the FP32 ones).")
    sensitivity: Optional[Path] = option(None, "With --joint-precision: per-block sensitivities (JSON) of an "
                                               "earlier run (default: measured now on the super-network and "
                                               "saved as sensitivity.json in the run directory).")
    sensitivity_subnets: int = option(3, "With --joint-precision: full-depth subnets whose blocks are quantized "
                                         "one at a time to measure sensitivities.")


@dataclass(frozen=True)
class ExportConfig(Config):
    """Export a subnet: quantize it, compile it for the device, measure it there, write a verified bundle."""

    KIND = "export"
    out: Optional[Path] = option(None, "Bundle directory to create.", required=True)
    run: Optional[Path] = option(None, "A search run directory (its front.json).")
    pick: str = option("best", "With --run: 'best' or a candidate index.")
    arch: Optional[str] = option(None, "Arch string / JSON (instead of --run).")
    space: Optional[str] = option(None, "Search space, if the arch does not name it.")
    checkpoint: Optional[Path] = option(None, "Super-network weights (default: shipped).")
    device: str = option("onnxruntime-cpu", "Target device backend; 'auto' (every runtime installed here) or a "
                                            "comma list: try each runtime × precision policy and deploy the fastest "
                                            "measured within the accuracy budget.")
    threads: int = option(1, "Runtime threads.")
    precision: str = option("mixed", "fp32 (the float model) | int8 (every layer) | mixed (searched per layer group); "
                                     "with several devices: the policies tried (mixed: all).")
    float_precision: tuple[str, ...] = option((), "Float precision of the layers outside INT8 (the device's inference "
                                                  "precision: fp32, bf16, fp16 where the CPU has them, on "
                                                  "openvino-cpu); with several devices, those to try (default: fp32 "
                                                  "for one device, every one the hardware has for several).")
    mixed_per_runtime: int = option(1, "With several devices: mixed-policy searches per runtime, for its fastest "
                                       "float precisions (0: only uniform and all-INT8 policies).")
    max_accuracy_drop: float = option(0.5, "Top-1 points the mixed policy may lose (validation split).")
    batch_size: int = option(1, "Images per inference of the deployed model (1: the latency one request sees; "
                                "N: throughput, every latency per batch of N; at most 256, the calibration "
                                "images).")
    data: Optional[str] = option(None, "Dataset name or folder (default: the space's).")
    data_options: dict[str, str] = data_option()
    overwrite: bool = option(False, "Replace an existing bundle at --out.")
    tune_minutes: float = option(0.0, "Meta-schedule tuning time for a compiler backend (tvm-llvm), in minutes; "
                                      "tasks already in the tuning database (user cache) are reused, not tuned "
                                      "again. 0: untuned.")
    cluster: Optional[str] = option(None, "Ray cluster of remote boards, HEAD:PORT (for a BACKEND@BOARD --device; "
                                          "default: RAY_ADDRESS).")


@dataclass(frozen=True)
class VerifyConfig(Config):
    """Re-check a bundle: integrity (any edited byte is refused), then accuracy and latency on the device."""

    KIND = "verify"
    bundle: Optional[Path] = option(None, "Bundle directory.", argument=True, required=True)
    device: Optional[str] = option(None, "Device (default: the one in the manifest).")
    latency_tolerance: float = option(0.15, "Allowed relative latency difference.")
    accuracy_tolerance: float = option(0.1, "Allowed accuracy difference (points).")
    data: Optional[str] = option(None, "Dataset name or folder (default: the space's).")
    data_options: dict[str, str] = data_option()
    cluster: Optional[str] = option(None, "Ray cluster of remote boards, HEAD:PORT (for a BACKEND@BOARD --device; "
                                          "default: RAY_ADDRESS).")


@dataclass(frozen=True)
class QuickstartConfig(Config):
    """Profile this CPU (or reuse a shipped profile of it), search under a budget, export with a searched
    mixed-precision policy, verify on the device, and write a report."""

    KIND = "quickstart"
    out: Path = option(Path("runs/quickstart"), "Run directory.")
    space: str = option("fmnist-mbv3", "Search space (with shipped weights and accuracy predictor).")
    latency_budget_ms: Optional[float] = option(None, "Latency budget (default: the median profiled subnet).")
    device: str = option("onnxruntime-cpu", "Device backend.")
    threads: int = option(1, "Runtime threads.")
    samples: int = option(60, "End-to-end subnets in the quick profile.")
    reference_set: int = option(10, "Fixed reference subnets in the quick profile.")
    repeats: int = option(5, "Reference subnets re-measured (repeatability).")
    ops: bool = option(False, "Also measure the block table in the quick profile.")
    max_accuracy_drop: float = option(0.5, "Top-1 points the mixed-precision policy may lose.")
    export_devices: str = option("onnxruntime-cpu,openvino-cpu", "Runtimes the export chooses among by measurement "
                                 "(those of them installed here; 'auto': every installed runtime; one name: only it).")
    mixed_per_runtime: int = option(1, "Mixed-policy searches per runtime in the export (where all-INT8 gains).")
    generations: int = option(25, "NSGA-II generations per round.")
    pop_size: int = option(50, "NSGA-II population.")
    reuse_shipped: bool = option(True, "Reuse a shipped profile of this exact CPU and runtime.")
    seed: int = option(0, "Seed of the search.")
