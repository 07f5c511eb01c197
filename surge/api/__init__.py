"""The Surge API (surge.dev/v1alpha1): pydantic models shared by the CLI, loadgen and operator."""

from surge.api.base import API_VERSION, GROUP, VERSION
from surge.api.durations import Duration, format_duration, parse_duration
from surge.api.experiment import ScalingExperiment, ScalingExperimentSpec, Variant
from surge.api.loadtest import LoadTest, LoadTestSpec
from surge.api.manifests import FieldError, ManifestError, load_file, parse_resource, parse_spec
from surge.api.status import Condition, LoadTestStatus, Phase, ThresholdResult
from surge.api.thresholds import METRICS, Threshold, parse_threshold

__all__ = [
    "API_VERSION",
    "GROUP",
    "METRICS",
    "VERSION",
    "Condition",
    "Duration",
    "FieldError",
    "LoadTest",
    "LoadTestSpec",
    "LoadTestStatus",
    "ManifestError",
    "Phase",
    "ScalingExperiment",
    "ScalingExperimentSpec",
    "Threshold",
    "ThresholdResult",
    "Variant",
    "format_duration",
    "load_file",
    "parse_duration",
    "parse_resource",
    "parse_spec",
    "parse_threshold",
]
