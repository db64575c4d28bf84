"""Noise schedulers: which diffusers scheduler samples, and so which objective trains.

``flow_match_euler`` (the default) is rectified flow: ``x_t = (1 - s) x_0 + s noise`` with
the model predicting the velocity ``noise - x_0``; it gives good samples in few steps.
``ddim`` and ``dpm_solver`` are the DDPM family (Stable Diffusion's), trained with
``prediction_type`` ``epsilon`` or ``v_prediction`` on the scaled-linear beta schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

#: config name -> diffusers class name; the only classes a saved pipeline may name.
SCHEDULERS = {
    "flow_match_euler": "FlowMatchEulerDiscreteScheduler",
    "ddim": "DDIMScheduler",
    "dpm_solver": "DPMSolverMultistepScheduler",
}


@dataclass
class SchedulerConfig:
    """The noise schedule (training) and sampler (inference)."""

    kind: str = "flow_match_euler"  # "flow_match_euler" (rectified flow), "ddim" or "dpm_solver" (DDPM family)
    num_train_timesteps: int = 1000  # discretisation of the training noise levels
    shift: float = 1.0  # flow: sigma shift s -> shift*s / (1 + (shift-1)*s); > 1 spends more steps at high noise
    beta_start: float = 0.00085  # DDPM family: first beta of the scaled-linear schedule (Stable Diffusion's)
    beta_end: float = 0.012  # DDPM family: last beta
    prediction_type: str = "epsilon"  # DDPM family: "epsilon" or "v_prediction"


def build_scheduler(config: SchedulerConfig):
    """The diffusers scheduler for ``config``.

    Raises:
        ConfigError: unknown kind or prediction type.
    """
    import diffusers

    if config.kind not in SCHEDULERS:
        raise ConfigError(f"scheduler.kind: {config.kind!r} is not one of {', '.join(SCHEDULERS)}")
    cls = getattr(diffusers, SCHEDULERS[config.kind])
    if config.kind == "flow_match_euler":
        return cls(num_train_timesteps=config.num_train_timesteps, shift=config.shift)
    if config.prediction_type not in ("epsilon", "v_prediction"):
        raise ConfigError(f"scheduler.prediction_type: {config.prediction_type!r} is not 'epsilon' or 'v_prediction'")
    extra = {"clip_sample": False, "set_alpha_to_one": False} if config.kind == "ddim" else {}
    return cls(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start, beta_end=config.beta_end,
               beta_schedule="scaled_linear", prediction_type=config.prediction_type, **extra)


def is_flow_matching(scheduler) -> bool:
    """True for rectified-flow schedulers (velocity target, sigma timesteps)."""
    return type(scheduler).__name__ == SCHEDULERS["flow_match_euler"]
