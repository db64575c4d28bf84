"""The editor's render back ends: the neural pipeline and the synthetic generator's exact renderer.

One :class:`Renderers` serves a whole process. The neural pipeline is loaded on the first
neural render, once, and shared by every session; its calls are serialised because a
diffusers scheduler keeps per-call state. Ground-truth renders are pure and run side by side.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ValidationError
from ..image_ops import quantize
from ..scene import Scene
from .state import RenderSettings

NEURAL = "neural"
GROUND_TRUTH = "ground truth"
GEOMETRIC = "geometric"
#: Back ends offered in the editor, in the order shown.
BACKENDS = (GROUND_TRUTH, GEOMETRIC, NEURAL)
#: Bounds of the render settings the editor accepts.
MAX_STEPS = 200
MAX_GUIDANCE = 20.0
MAX_SEED = 2**64 - 1  # the largest seed torch.Generator.manual_seed accepts

#: ``progress(fraction, desc=...)``, e.g. a ``gr.Progress``.
Progress = Callable[..., object]


@dataclass(frozen=True)
class Render:
    """One rendered frame.

    Attributes:
        image: (3, H, W) float in [0, 1] at the scene's size, multiples of 1/255.
        kept: (H, W) float in [0, 1], the share of each pixel the neural back end kept from
            the photo rather than drew (``keep unchanged pixels``), or None when it kept
            nothing (other back ends, or keeping turned off).
    """

    image: Tensor
    kept: Tensor | None = None


def check_settings(settings: RenderSettings) -> None:
    """Raise :class:`ValidationError` naming the first render setting out of range."""
    if settings.backend not in BACKENDS:
        raise ValidationError(f"backend: {settings.backend!r} is not one of {', '.join(BACKENDS)}")
    if not 1 <= settings.steps <= MAX_STEPS:
        raise ValidationError(f"steps: expected 1..{MAX_STEPS}, got {settings.steps}")
    if not 0 <= settings.guidance <= MAX_GUIDANCE:
        raise ValidationError(f"guidance: expected 0..{MAX_GUIDANCE:g}, got {settings.guidance}")
    if not 0 <= settings.seed <= MAX_SEED:
        raise ValidationError(f"seed: expected an integer in 0..{MAX_SEED}, got {settings.seed}")


class Renderers:
    """Render back ends shared by every session of one process.

    Args:
        weights: pipeline folder or hub id for the neural back end (None = the shipped weights).
        device: torch device the pipeline runs on.
    """

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu") -> None:
        self.weights = weights
        self.device = device
        self.loads = 0  # how many times the pipeline was loaded (once per process, or zero)
        self._pipeline = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def neural_status(self) -> str:
        """One line for the UI: whether the neural back end has weights, checked without loading them."""
        from ..pipelines.neural_assets import DEFAULT_WEIGHTS

        if self._pipeline is not None:
            return "Neural back end: model loaded."
        folder = DEFAULT_WEIGHTS if self.weights is None else Path(self.weights)
        if (self.weights is None or folder.is_dir()) and not (folder / "model_index.json").is_file():
            return f"Neural back end unavailable: no trained weights in {folder.name}/ (use the ground-truth or geometric back end)."
        return "Neural back end: weights are loaded on the first neural render."

    def pipeline(self):
        """The :class:`~neuralassets.pipelines.NeuralAssetsPipeline`, loaded on first use.

        Raises:
            WeightsError: the weights are missing or unreadable (nothing is cached, so a later
                call tries again).
        """
        with self._load_lock:
            if self._pipeline is None:
                from ..pipelines import NeuralAssetsPipeline

                self._pipeline = NeuralAssetsPipeline.from_pretrained(self.weights).to(self.device)
                self.loads += 1
            return self._pipeline

    def render(self, scene: Scene, frame: int, settings: RenderSettings, progress: Progress | None = None) -> Render:
        """Render ``scene`` as seen at ``frame``.

        Args:
            scene: the scene to render; not modified.
            frame: frame index (its poses and camera are rendered; the neural back end takes
                appearance and background from the same frame).
            settings: back end, steps, guidance and seed.
            progress: called with ``((step, num_steps), desc=...)`` after each denoising step
                (``gr.Progress`` shows it as a fraction), and with ``(0.0, desc=...)`` while
                the model loads.

        Returns:
            The :class:`Render`.

        Raises:
            ValidationError: bad settings, or a scene the ground-truth renderer cannot draw
                (not made by the synthetic generator).
            WeightsError: the neural back end has no usable weights.
        """
        check_settings(settings)
        if settings.backend == GEOMETRIC:
            from ..pipelines import GeometricRenderer

            return Render(quantize(GeometricRenderer()(scene, frame, source_frame=frame)))
        if settings.backend == GROUND_TRUTH:
            from ..data import render

            try:
                return Render(render(scene, frames=[frame]).rgb[0])
            except ValidationError as e:
                raise ValidationError(f"the ground-truth back end renders only synthetic scenes ({e}); "
                                      "the geometric back end draws any scene") from None
        if progress is not None and self._pipeline is None:
            progress(0.0, desc="loading the neural model (once)")
        pipe = self.pipeline()

        def step_done(step: int, num_steps: int) -> None:
            if progress is not None:
                progress((step, num_steps), desc=f"denoising step {step} of {num_steps}")

        generator = torch.Generator(pipe.device).manual_seed(settings.seed)
        with self._run_lock:
            out = pipe(scene, target_frame=frame, source_frame=frame, num_inference_steps=settings.steps,
                       guidance_scale=settings.guidance, generator=generator, keep_unchanged=settings.keep_unchanged,
                       callback=step_done)
        kept = None if out.kept is None else out.kept[0, 0].float().cpu().clamp(0, 1)
        return Render(quantize(out.images[0].float().cpu()), kept)


__all__ = ["BACKENDS", "GEOMETRIC", "GROUND_TRUTH", "NEURAL", "Render", "Renderers", "check_settings"]
