"""Training: config dataclasses, the accelerate trainer, objectives and atomic checkpoints."""

from .config import DataConfig, OptimConfig, TrainConfig, load_config
from .trainer import Trainer

__all__ = ["DataConfig", "OptimConfig", "TrainConfig", "Trainer", "load_config"]
