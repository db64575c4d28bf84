"""The pose-edit benchmark: tasks built from held-out synthetic scenes, their inputs (exact, extracted or
perturbed), methods, harness and report.

See ``benchmarks/pose_edit.py`` (or ``neuralassets bench``) for the command line.
"""

from ..data.edit_cases import TASKS, Case
from .baselines import CopyPasteMethod, GeometricMethod, IdentityMethod, Method, PipelineMethod, VAECeilingMethod
from .harness import BenchmarkConfig, BenchmarkResult, run_benchmark, run_sweep
from .inputs import ExactInputs, ExtractedInputs, PerturbedInputs
from .report import write_report

__all__ = ["TASKS", "BenchmarkConfig", "BenchmarkResult", "Case", "CopyPasteMethod", "ExactInputs", "ExtractedInputs",
           "GeometricMethod", "IdentityMethod", "Method", "PerturbedInputs", "PipelineMethod", "VAECeilingMethod",
           "run_benchmark", "run_sweep", "write_report"]
