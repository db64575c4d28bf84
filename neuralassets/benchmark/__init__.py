"""The pose-edit benchmark: tasks built from held-out synthetic scenes, their inputs (exact, extracted or
perturbed), methods, harness and report.

See ``benchmarks/pose_edit.py`` (or ``neuralassets bench``) for the command line.
"""

from .baselines import CopyPasteMethod, GeometricMethod, IdentityMethod, Method, PipelineMethod, VAECeilingMethod
from .case import Case
from .harness import BenchmarkConfig, BenchmarkResult, run_benchmark, run_sweep
from .inputs import ExactInputs, ExtractedInputs, PerturbedInputs
from .report import write_report
from .tasks import TASKS

__all__ = ["TASKS", "BenchmarkConfig", "BenchmarkResult", "Case", "CopyPasteMethod", "ExactInputs", "ExtractedInputs",
           "GeometricMethod", "IdentityMethod", "Method", "PerturbedInputs", "PipelineMethod", "VAECeilingMethod",
           "run_benchmark", "run_sweep", "write_report"]
