"""Configs: what a command line means, shared by the CLI and the Python API (see :mod:`hwnas.config.base`)."""

from hwnas.config.base import Config, option
from hwnas.config.commands import (
    AccuracyDatasetConfig,
    ArchQueryConfig,
    DeviceJoinConfig,
    DevicesConfig,
    EvalSubnetConfig,
    EvaluateConfig,
    ExportSubnetConfig,
    FitAccuracyConfig,
    FitConfig,
    MeasureConfig,
    PredictConfig,
    ProfileInfoConfig,
    ProfileMergeConfig,
    SpacesConfig,
    TrainSupernetConfig,
)
from hwnas.config.jobs import ExportConfig, ProfileConfig, QuickstartConfig, SearchConfig, VerifyConfig

__all__ = ["AccuracyDatasetConfig", "ArchQueryConfig", "Config", "DeviceJoinConfig", "DevicesConfig", "EvalSubnetConfig",
           "EvaluateConfig", "ExportConfig", "ExportSubnetConfig", "FitAccuracyConfig", "FitConfig", "MeasureConfig",
           "PredictConfig", "ProfileConfig", "ProfileInfoConfig", "ProfileMergeConfig", "QuickstartConfig",
           "SearchConfig", "SpacesConfig", "TrainSupernetConfig", "VerifyConfig", "option"]
