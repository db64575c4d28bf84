"""The pose-edit benchmark: tasks built from held-out synthetic scenes, methods, harness and report.

See ``benchmarks/pose_edit.py`` (or ``neuralassets bench``) for the command line.
"""

from ..data.edit_cases import TASKS, Case
from .baselines import CopyPasteMethod, IdentityMethod, Method, PipelineMethod, VAECeilingMethod
from .harness import BenchmarkConfig, BenchmarkResult, run_benchmark
from .report import write_report

__all__ = ["TASKS", "BenchmarkConfig", "BenchmarkResult", "Case", "CopyPasteMethod", "IdentityMethod", "Method",
           "PipelineMethod", "VAECeilingMethod", "run_benchmark", "write_report"]
