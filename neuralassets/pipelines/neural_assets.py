"""``NeuralAssetsPipeline``: render a Scene (or a batch of conditionings) with the model.

A saved pipeline is a diffusers-like folder, nothing in it is pickled::

    model_index.json                       format version, image size, slots, defaults, component classes
    asset_encoder/config.json, model.safetensors
    denoiser/config.json, model.safetensors
    vae/config.json, diffusion_pytorch_model.safetensors   (a diffusers-style model folder)
    scheduler/scheduler_config.json

Weights may be stored in bf16 (``save_pretrained(..., dtype=torch.bfloat16)``); they are
upcast to float32 on load.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from ..conditioning import Conditioning, conditioning_from_scene, frame_conditioning
from ..config import check_config_keys, diffusers_config
from ..errors import ConfigError, ValidationError, VideoError, WeightsError
from ..framing import cut, letterbox_window, window_scene
from ..image_ops import resize_images, resize_maps, to_numpy_image
from ..jsonio import read_json, write_json
from ..models.asset_encoder import AssetEncoder, AssetTokens
from ..models.autoencoder import downsampling_factor
from ..models.build import Components, ModelConfig, build_components, part_config
from ..models.denoiser import Denoiser
from ..models.patch_autoencoder import autoencoder_class, autoencoder_kind, takes_reference
from ..models.quantization import quantize_state
from ..models.scheduler import SCHEDULERS, is_flow_matching
from ..models.weights import load_weights, save_weights
from ..scene import Scene
from ..video import write_video
from . import compositing
from .edit_region import unchanged_photo, untouched_view
from .surface_splatting import object_reference, reference_coverage
from .thresholds import RenderThresholds

FORMAT_VERSION = 1
#: The shipped default model: the repository's top-level weights/ folder.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
WEIGHT_FILES = {"asset_encoder": "model.safetensors", "denoiser": "model.safetensors",
                "vae": "diffusion_pytorch_model.safetensors"}
OUTPUT_TYPES = ("pt", "np", "pil")
#: ``callback(step, num_steps)``, called after each denoising step (``step`` from 1).
StepCallback = Callable[[int, int], object]
#: Frames per second of written videos unless told otherwise.
DEFAULT_FPS = 12.0
#: File formats :meth:`NeuralAssetsPipeline.render_video` writes.
VIDEO_FORMATS = (".mp4", ".gif")


def replace_folder(staged: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Put the finished folder ``staged`` at ``folder``, replacing what is there.

    The old folder is moved aside before and deleted after, so a crash leaves one or the
    other whole (the old one under ``<folder>.old``), never a half-written folder.
    """
    staged, folder = Path(staged), Path(folder)
    old = folder.with_name(folder.name + ".old")
    if old.exists() and not folder.exists():
        os.replace(old, folder)  # an earlier replace stopped between its two moves: its old folder is the only copy
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staged, folder)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class NeuralAssetsPipelineOutput:
    """Rendered images.

    Attributes:
        images: ``"pt"``: (B, 3, H, W) float in [0, 1]; ``"np"``: (B, H, W, 3) uint8;
            ``"pil"``: list of B RGB ``PIL.Image``.
        kept: (B, 1, H, W) float in [0, 1], the share of each pixel taken from the photo by
            ``keep_unchanged`` (0 where the render was drawn), or None when nothing was kept.
    """

    images: Tensor | np.ndarray | list[Image.Image]
    kept: Tensor | None = None


class KeptLatents(NamedTuple):
    """Latents the sampler keeps where an edit leaves the photo alone (:meth:`NeuralAssetsPipeline.denoise`).

    Attributes:
        latents: (B, C, h, w) scaled clean latents of the photos.
        free: (B, 1, h, w) bool, True where the sampler draws and False where it keeps ``latents``
            (noised to the level of each step, clean after the last).
    """

    latents: Tensor
    free: Tensor


class NeuralAssetsPipeline:
    """Asset tokens -> latent diffusion -> image.

    Args:
        vae: :class:`~neuralassets.models.patch_autoencoder.PatchAutoencoder` or diffusers ``AutoencoderKL``.
        asset_encoder: :class:`~neuralassets.models.AssetEncoder`.
        denoiser: :class:`~neuralassets.models.Denoiser`.
        scheduler: a diffusers scheduler (:data:`~neuralassets.models.scheduler.SCHEDULERS`).
        config: the :class:`~neuralassets.models.ModelConfig` the components were built from
            (image size, object slots and default sampling settings are read from it).

    The networks are put in eval mode without gradients (pass copies to keep training them).

    Attributes:
        autocast_dtype: None (float32) or ``torch.bfloat16`` to run the networks under autocast
            (faster on recent CPUs and GPUs; same seed -> same image either way).
        thresholds: :class:`~neuralassets.pipelines.thresholds.RenderThresholds`, every tolerance of
            the pixel steps around the networks (the objects' photo pixels drawn for the decoder,
            the photo reprojected for a moved camera, where a render keeps the photo's pixels);
            replace it to tune.
    """

    def __init__(self, vae: nn.Module, asset_encoder: AssetEncoder, denoiser: Denoiser, scheduler, config: ModelConfig):
        self.vae, self.asset_encoder, self.denoiser, self.scheduler = vae, asset_encoder, denoiser, scheduler
        self.config = config
        self.autocast_dtype: torch.dtype | None = None
        self.thresholds = RenderThresholds()
        for m in (vae, asset_encoder, denoiser):
            m.eval().requires_grad_(False)

    # ------------------------------------------------------------------ construction and files

    @classmethod
    def from_config(cls, config: ModelConfig) -> NeuralAssetsPipeline:
        """A pipeline with freshly built components (random weights except pretrained parts)."""
        return cls.from_components(build_components(config))

    @classmethod
    def from_components(cls, components: Components) -> NeuralAssetsPipeline:
        c = components
        return cls(c.vae, c.asset_encoder, c.denoiser, c.scheduler, c.config)

    @classmethod
    def from_pretrained(cls, folder_or_id: str | os.PathLike | None = None) -> NeuralAssetsPipeline:
        """Load a saved pipeline.

        Args:
            folder_or_id: a folder written by :meth:`save_pretrained`, or a hub id of one;
                None loads the shipped default from the repository's ``weights/`` folder.

        Raises:
            WeightsError: the folder is missing, incomplete or of another format version, or a
                stored tensor does not match the config (the message names the tensor).
        """
        folder = _resolve(folder_or_id)
        index = _read_config(folder / "model_index.json")
        if index.get("format_version") != FORMAT_VERSION:
            raise WeightsError(f"{folder / 'model_index.json'}: format_version {index.get('format_version')!r}, "
                               f"expected {FORMAT_VERSION}")
        import diffusers

        scheduler_class = index.get("scheduler", [None, None])[1]
        if scheduler_class not in SCHEDULERS.values():
            raise WeightsError(f"{folder / 'model_index.json'}: scheduler {scheduler_class!r} is not one of "
                               f"{', '.join(SCHEDULERS.values())}")
        scheduler = getattr(diffusers, scheduler_class).from_config(_read_config(folder / "scheduler" / "scheduler_config.json"))

        vae_config = _read_config(folder / "vae" / "config.json")
        vae = autoencoder_class(vae_config).from_config(vae_config)
        encoder = AssetEncoder.from_config(_part_config(folder / "asset_encoder" / "config.json", AssetEncoder))
        denoiser = Denoiser.from_config(_part_config(folder / "denoiser" / "config.json", Denoiser),
                                        latent_channels=int(vae_config["latent_channels"]),
                                        latent_size=index["image_size"] // downsampling_factor(vae),
                                        token_dim=encoder.config.token_dim, spatial_channels=encoder.config.spatial_channels)
        for name, module in (("asset_encoder", encoder), ("denoiser", denoiser), ("vae", vae)):
            load_weights(module, folder / name / WEIGHT_FILES[name])
        defaults = ModelConfig()
        config = ModelConfig(
            image_size=int(index["image_size"]), max_objects=int(index["max_objects"]),
            num_inference_steps=int(index.get("num_inference_steps", defaults.num_inference_steps)),
            guidance_scale=float(index.get("guidance_scale", defaults.guidance_scale)),
            autoencoder=replace(defaults.autoencoder, kind=autoencoder_kind(vae),
                                latent_channels=int(vae_config["latent_channels"]),
                                scaling_factor=float(vae_config["scaling_factor"]), model_config=vae_config),
            asset_encoder=diffusers_config(encoder), denoiser=part_config(denoiser))
        return cls(vae, encoder, denoiser, scheduler, config)

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None,
                        max_shard_bytes: int | None = None) -> None:
        """Write the pipeline folder (replacing one that exists, never leaving half a folder).

        Files of an existing folder that are not part of a pipeline (a model card, images)
        are kept; its model_index.json and component folders are replaced.

        Args:
            folder: destination.
            dtype: store float weights in this dtype (e.g. ``torch.bfloat16`` halves the size);
                ``torch.int8`` stores matrices and kernels as int8 with per-row scales and the
                rest as bfloat16 (about a quarter; see :mod:`~neuralassets.models.quantization`);
                None keeps float32.
            max_shard_bytes: split a component's weights into numbered files of at most this
                many bytes each (plus a ``.index.json`` naming the file of every tensor, as
                diffusers and transformers do); None writes one file per component.
        """
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for name in ("asset_encoder", "denoiser", "vae", "scheduler"):
            (tmp / name).mkdir(parents=True)
        c = self.config
        index = {"_class_name": type(self).__name__, "format_version": FORMAT_VERSION,
                 "image_size": c.image_size, "max_objects": c.max_objects,
                 "num_inference_steps": c.num_inference_steps, "guidance_scale": c.guidance_scale,
                 "asset_encoder": ["neuralassets", "AssetEncoder"], "denoiser": ["neuralassets", "Denoiser"],
                 "vae": [type(self.vae).__module__.split(".")[0], type(self.vae).__name__],
                 "scheduler": ["diffusers", type(self.scheduler).__name__]}
        write_json(tmp / "model_index.json", index)
        for name, module in (("asset_encoder", self.asset_encoder), ("denoiser", self.denoiser), ("vae", self.vae),
                             ("scheduler", self.scheduler)):
            module.save_config(tmp / name)
            # diffusers records the folder a model was loaded from; a shipped folder must not name another machine's path
            config_path = tmp / name / module.config_name
            config = json.loads(config_path.read_text())
            config.pop("_name_or_path", None)
            write_json(config_path, config)
        for name, module in (("asset_encoder", self.asset_encoder), ("denoiser", self.denoiser), ("vae", self.vae)):
            state = module.state_dict()
            if dtype == torch.int8:
                state = quantize_state(state)
            else:
                state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
                         for k, v in state.items()}
            save_weights(state, tmp / name / WEIGHT_FILES[name], max_shard_bytes)
        if folder.is_dir():
            for entry in folder.iterdir():
                if not (tmp / entry.name).exists():
                    copy = shutil.copytree if entry.is_dir() else shutil.copy2
                    copy(entry, tmp / entry.name)
        replace_folder(tmp, folder)

    def to(self, device: str | torch.device) -> NeuralAssetsPipeline:
        """Move every network to ``device``; returns self."""
        for m in (self.vae, self.asset_encoder, self.denoiser):
            m.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def latent_size(self) -> int:
        """Side of the latent grid."""
        return self.config.image_size // downsampling_factor(self.vae)

    # ------------------------------------------------------------------ rendering

    @torch.no_grad()
    def __call__(self, scene: Scene | Sequence[Scene], target_frame: int = -1, source_frame: int | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 generator: torch.Generator | None = None, latents: Tensor | None = None,
                 output_type: str = "pt", keep_unchanged: bool = True,
                 callback: StepCallback | None = None) -> NeuralAssetsPipelineOutput:
        """Render ``scene`` as seen at ``target_frame``, at the scene's own size.

        Args:
            scene: the scene (edited or not), or several scenes of one size rendered as a batch;
                they are not modified. A scene with more objects than the model's slots keeps
                the edited ones and the most salient others; the rest are folded into the
                background (:meth:`fit_to_slots`, with a warning).
            target_frame: frame whose poses and camera are rendered (negative counts from the end).
            source_frame: frame to take every asset's appearance and the background from
                (default: each asset's own source frame).
            num_inference_steps: sampling steps (default: the model's).
            guidance_scale: classifier-free guidance scale, >= 0 (default: the model's); 1 turns
                guidance off, 0 renders the object-free null.
            generator: a ``torch.Generator`` seeding the initial noise; the same seed gives the same image.
            latents: (B, C, h, w) initial noise to use instead of drawing it (videos keep it fixed).
            output_type: ``"pt"``, ``"np"`` or ``"pil"``.
            keep_unchanged: keep the photo the background comes from where the edit leaves it
                alone: while sampling, its latents as the target camera sees it outside what the
                edit touches (:func:`~.edit_region.edit_region`, grown by
                ``thresholds.edit_margin`` latent cells), so the model draws only the edit; after
                decoding, its pixels wherever the render leaves the scene unchanged
                (:meth:`composite_unchanged`), that photo seen by the target camera (reprojected
                through the scene's depth when the camera moved; skipped when neither applies).
                False returns the model's render alone.
            callback: called as ``callback(step, num_steps)`` after each denoising step
                (``step`` counts from 1), e.g. to report progress.

        Returns:
            :class:`NeuralAssetsPipelineOutput` with one image per scene of the scene's height and
            width and, when pixels were kept, where.
        """
        scenes = [scene] if isinstance(scene, Scene) else list(scene)
        if output_type not in OUTPUT_TYPES:
            raise ValidationError(f"output_type: {output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
        if not scenes:
            raise ValidationError("scene: an empty list; expected a Scene or a list of them")
        sizes = {(s.height, s.width) for s in scenes}
        if len(sizes) > 1:
            raise ValidationError(f"scene: a batch of scenes must share one size, got {sorted(sizes)}")
        frames = []
        for s in scenes:
            if not -s.num_frames <= target_frame < s.num_frames:
                raise ValidationError(f"target_frame: {target_frame} is not a frame index of a {s.num_frames}-frame scene")
            frames.append(target_frame % s.num_frames)
        scenes = [self.fit_to_slots(s, f) for s, f in zip(scenes, frames)]
        images, kept = self._render_views(list(zip(scenes, frames)), self._conditioning(conditioning_from_scene, source_frame),
                                          source_frame, num_inference_steps, guidance_scale, generator, latents,
                                          keep_unchanged, callback)
        return NeuralAssetsPipelineOutput(images=to_output_type(images, output_type), kept=kept)

    @torch.no_grad()
    def render_video(self, scene: Scene, frames: Sequence[int] | None = None, *, fps: float = DEFAULT_FPS,
                     out: str | os.PathLike | None = None, num_inference_steps: int | None = None,
                     guidance_scale: float | None = None, seed: int = 0, source_frame: int | None = None,
                     batch_size: int = 8, progress: bool = True, keep_unchanged: bool = True) -> Tensor:
        """Render frames of ``scene`` as a temporally consistent video, at the scene's size.

        Every frame is rendered from the *same* initial noise, so consecutive frames differ only
        where the conditioning does, and takes appearance and background from the same source:
        an object keeps its looks through the whole video, also after leaving the view and
        coming back (assets out of view at a frame are left out of it,
        :func:`~neuralassets.conditioning.frame_conditioning`).

        Args:
            scene: the scene to render (e.g. from :func:`neuralassets.animation.animate`); not modified.
            frames: frame indices to render, in order (default: all).
            fps: frame rate of the written file.
            out: ``.mp4`` or ``.gif`` path to write (:func:`neuralassets.video.write_video`), or None.
            num_inference_steps, guidance_scale: sampling settings (default: the model's).
            seed: seeds the one initial noise shared by every frame.
            source_frame: frame every asset's appearance and the background come from (default:
                each asset's own source frame; the background comes from the first asset's, as in
                ``conditioning_from_scene``).
            batch_size: frames per denoising batch.
            progress: show a progress bar over frames.
            keep_unchanged: as in :meth:`__call__`, with each frame's camera.

        Returns:
            (T, 3, H, W) float in [0, 1].

        Raises:
            ValidationError: an empty or bad frame list, or a bad setting.
            VideoError: ``out`` is not an ``.mp4`` or ``.gif`` path (checked before rendering).
        """
        frames = list(range(scene.num_frames)) if frames is None else [int(f) for f in frames]
        if not frames:
            raise ValidationError("frames: empty; expected at least one frame index")
        bad = [f for f in frames if not 0 <= f < scene.num_frames]
        if bad:
            raise ValidationError(f"frames: {bad[:5]} are not frame indices of a {scene.num_frames}-frame scene")
        if batch_size < 1:
            raise ValidationError(f"batch_size: expected >= 1, got {batch_size}")
        if out is not None and Path(out).suffix.lower() not in VIDEO_FORMATS:
            raise VideoError(f"{out}: cannot write {Path(out).suffix!r}; expected one of {', '.join(VIDEO_FORMATS)}")
        scene = self.fit_to_slots(scene, frames[0])  # one choice for the whole video, so no object flickers
        noise = torch.randn(self.latent_shape(1), generator=torch.Generator().manual_seed(int(seed)))
        images = []
        with tqdm(total=len(frames), desc="render video", unit="frame", disable=not progress, leave=False) as bar:
            for start in range(0, len(frames), batch_size):
                chunk = frames[start:start + batch_size]
                images.append(self._render_views([(scene, f) for f in chunk],
                                                 self._conditioning(frame_conditioning, source_frame), source_frame,
                                                 num_inference_steps,
                                                 guidance_scale, None, noise.expand(len(chunk), -1, -1, -1),
                                                 keep_unchanged)[0].float().cpu())
                bar.update(len(chunk))
        video = torch.cat(images)
        if out is not None:
            write_video(Path(out), video, fps=fps)
        return video

    def fit_to_slots(self, scene: Scene, frame: int) -> Scene:
        """``scene`` with at most the model's ``max_objects`` assets: the edited ones and the most salient
        others at ``frame``, the rest folded into the background (:func:`~neuralassets.perception.fit_to_slots`,
        which warns once with a :class:`~neuralassets.perception.SlotWarning` naming them); the scene
        itself when it fits."""
        from ..perception.budget import fit_to_slots

        return fit_to_slots(scene, self.config.max_objects, frame).scene

    def _conditioning(self, make: Callable[..., Conditioning], source_frame: int | None) -> Callable[[Scene, int], Conditioning]:
        """``make(scene, frame, max_objects, source_frame)`` as a function of a view."""
        return lambda scene, frame: make(scene, frame, self.config.max_objects, source_frame)

    def _render_views(self, views: list[tuple[Scene, int]], condition: Callable[[Scene, int], Conditioning],
                      source_frame: int | None, num_inference_steps: int | None, guidance_scale: float | None,
                      generator: torch.Generator | None, latents: Tensor | None, keep_unchanged: bool,
                      callback: StepCallback | None = None) -> tuple[Tensor, Tensor | None]:
        """Render each (scene, frame) view, conditioned by ``condition(scene, frame)``, at its scene's size (one size for all).

        This is the one place a render of a Scene keeps the unchanged photo's pixels: the
        background photo less what the edit changed, as the view's camera sees it
        (:func:`~.edit_region.unchanged_photo`), replaces the render wherever the render left the
        scene unchanged (:meth:`composite_unchanged`).
        The model renders squares: a frame of another shape is seen through its letterbox square
        (:func:`~neuralassets.framing.letterbox_window`, bars past the frame) rather than squashed,
        and the frame is cut back out of the square.

        Returns:
            (B, 3, H, W) float in [0, 1], and (B, 1, H, W) the share of each pixel kept from the
            photo (None when no photo was kept).
        """
        photos = [unchanged_photo(s, f, source_frame, self.thresholds) for s, f in views] if keep_unchanged else None
        height, width = views[0][0].height, views[0][0].width
        window = letterbox_window(height, width)
        framed = window != (0, 0, width, height)
        if framed:  # the photos stay the frame's own, unknown (NaN) in the bars
            squares = {id(s): window_scene(s, window) for s, _ in views}  # a video's frames share one scene
            views = [(squares[id(s)], f) for s, f in views]
            photos = photos and [None if photo is None else cut(photo, window, math.nan) for photo in photos]
        conds = [condition(s, f) for s, f in views]
        images, reference = self._sample_and_decode(Conditioning.collate(conds), num_inference_steps, guidance_scale,
                                                    generator, latents, callback,
                                                    self._kept_latents(views, conds, source_frame) if keep_unchanged else None)
        kept = None
        if photos is None or all(photo is None for photo in photos):
            images = resize_images(images, (views[0][0].height, views[0][0].width))
        else:
            images, kept = self._composite(images, photos, None if reference is None else reference_coverage(reference))
        if framed:
            frame = (-window[0], -window[1], width - window[0], height - window[1])
            images, kept = cut(images, frame), None if kept is None else cut(kept, frame)
        return images.clamp(0, 1), kept

    @torch.no_grad()
    def render(self, cond: Conditioning, num_inference_steps: int | None = None, guidance_scale: float | None = None,
               generator: torch.Generator | None = None, latents: Tensor | None = None) -> Tensor:
        """Render a batch of conditionings with the model alone (the render of a Scene is :meth:`__call__`).

        Args:
            cond: batched :class:`Conditioning` with at most ``max_objects`` slots.
            num_inference_steps, guidance_scale, generator: as in :meth:`__call__`.
            latents: (B, C, h, w) initial noise, or None to draw it from ``generator``.

        Returns:
            (B, 3, image_size, image_size) float in [0, 1].
        """
        return self._sample_and_decode(cond, num_inference_steps, guidance_scale, generator, latents)[0]

    def _kept_latents(self, views: list[tuple[Scene, int]], conds: list[Conditioning],
                      source_frame: int | None) -> KeptLatents | None:
        """The background photo's latents, as each view's camera sees it, outside what the edit touches (``conds``:
        each view's conditioning); None when no view keeps any.

        A latent cell is free when any of its pixels is touched or unseen by the photo
        (:func:`~.edit_region.untouched_view`), and the free region grows by
        ``thresholds.edit_margin`` cells (None: nothing is kept). Unseen pixels are filled with
        the seen ones' mean colour before encoding, so they pull no cell towards black.
        """
        margin = self.thresholds.edit_margin
        if margin is None:
            return None
        untouched = [untouched_view(s, f, source_frame, self.thresholds, c) for (s, f), c in zip(views, conds)]
        rows = [i for i, u in enumerate(untouched) if u is not None and not u.isnan().all()]
        if not rows:
            return None
        size, grid = (self.config.image_size,) * 2, (self.latent_size,) * 2
        photos = resize_images(torch.stack([untouched[i] for i in rows]), size)
        unseen = photos.isnan().any(1, keepdim=True)
        mean = photos.nan_to_num(0.0).sum((2, 3), keepdim=True) / (~unseen).sum((2, 3), keepdim=True)
        photos = torch.where(unseen, mean, photos)
        free = torch.ones(len(views), 1, *grid, dtype=torch.bool)
        cells = F.adaptive_max_pool2d(unseen.float(), grid)
        free[rows] = F.max_pool2d(cells, 2 * margin + 1, stride=1, padding=margin) > 0
        unique, inverse = _unique_images(photos, torch.zeros(len(rows), dtype=torch.bool))  # a still video's one photo
        latents = torch.zeros(len(views), *self.latent_shape(1)[1:], device=self.device)
        latents[rows] = self.encode_images(photos[unique])[inverse]
        return KeptLatents(latents, free.to(self.device))

    def _sample_and_decode(self, cond: Conditioning, num_inference_steps: int | None, guidance_scale: float | None,
                           generator: torch.Generator | None, latents: Tensor | None,
                           callback: StepCallback | None = None, kept: KeptLatents | None = None
                           ) -> tuple[Tensor, Tensor | None]:
        """(B, 3, S, S) renders of ``cond`` and the decoder's object reference (None when it takes none)."""
        latents = self.sample_latents(cond, num_inference_steps, guidance_scale, generator, latents, callback, kept)
        reference = self._reference(latents, cond)
        return self._decode(latents, reference), reference

    @torch.no_grad()
    def composite_unchanged(self, images: Tensor, photos: Sequence[Tensor | None], drawn: Tensor | None = None) -> Tensor:
        """Take each photo's own pixels wherever its render left the scene unchanged, at the photos' size.

        The photo goes through the autoencoder too; where the render matches that
        reconstruction, the model drew what the photo shows, and the photo's sharp pixel
        replaces the blurred one (:mod:`neuralassets.pipelines.compositing`, with :attr:`thresholds`).
        A photo must be seen by its render's camera, e.g.
        :func:`~neuralassets.pipelines.edit_region.unchanged_photo` (the background photo less the
        objects the edit changed, reprojected through its depth when the camera moved).

        Args:
            images: (B, 3, S, S) float in [0, 1], renders.
            photos: B entries, each (3, H, W) float in [0, 1] (NaN where the photo does not see
                the scene), all of one size, or None to keep that render whole.
            drawn: (B, S, S) bool, where the renders took the objects' photo pixels (the
                decoder's reference coverage). There a render is as sharp as the photo, so it is
                compared with the photo itself rather than its blurred reconstruction.

        Returns:
            (B, 3, H, W) float in [0, 1], a new tensor.

        Raises:
            ValidationError: not B photos, a photo not of shape (3, H, W), or photos of several sizes.
        """
        return self._composite(images, photos, drawn)[0]

    def _composite(self, images: Tensor, photos: Sequence[Tensor | None],
                   drawn: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """:meth:`composite_unchanged`'s images, and (B, 1, H, W) the share of each pixel kept from the photo (None without photos)."""
        if len(photos) != len(images):
            raise ValidationError(f"photos: {len(photos)} entries for a batch of {len(images)}")
        for i, photo in enumerate(photos):
            if photo is not None and (photo.dim() != 3 or photo.shape[0] != 3):
                raise ValidationError(f"photos[{i}]: shape {tuple(photo.shape)}, expected (3, H, W)")
        sizes = {tuple(photo.shape[-2:]) for photo in photos if photo is not None}
        if len(sizes) > 1:
            raise ValidationError(f"photos: expected one size, got {sorted(sizes)}")
        size = sizes.pop() if sizes else tuple(images.shape[-2:])
        out = resize_images(images, size)
        rows = [i for i, photo in enumerate(photos) if photo is not None]
        if not rows:
            return out, None
        photo = torch.stack([photos[i].float() for i in rows]).to(images.device, images.dtype)
        small = resize_images(photo, tuple(images.shape[-2:]))
        filled = torch.where(torch.isnan(small), images[rows], small)  # what the photo does not see: the render
        # a still camera's frames share one photo with nothing to fill: reconstruct it once
        unique, inverse = _unique_images(filled, small.isnan().flatten(1).any(dim=1))
        reconstruction = self.decode_latents(self.encode_images(filled[unique])).to(images.dtype)[inverse]
        if drawn is not None:
            reconstruction = torch.where(drawn[rows].to(images.device).unsqueeze(1), filled, reconstruction)
        weight = compositing.render_weight(images[rows], photo, reconstruction, self.thresholds)
        kept = out.new_zeros(len(out), 1, *size)
        out[rows], kept[rows] = compositing.blend(out[rows], photo, weight), 1 - weight
        return out, kept

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Images through the autoencoder at the model's size, back at their own: (B, 3, H, W) float in [0, 1] -> the same.

        No render through this autoencoder can be closer to an image than its reconstruction.
        """
        size = (self.config.image_size,) * 2
        decoded = self.decode_latents(self.encode_images(resize_images(images, size))).float().cpu()
        return resize_images(decoded, tuple(images.shape[-2:])).clamp(0, 1)

    def latent_shape(self, batch_size: int) -> tuple[int, int, int, int]:
        """(B, C, h, w) of the latents the model samples."""
        return (batch_size, int(self.vae.config.latent_channels), self.latent_size, self.latent_size)

    def sample_latents(self, cond: Conditioning, num_inference_steps: int | None = None, guidance_scale: float | None = None,
                       generator: torch.Generator | None = None, latents: Tensor | None = None,
                       callback: StepCallback | None = None, kept: KeptLatents | None = None) -> Tensor:
        """:meth:`render` without the decoding: (B, C, h, w) scaled clean latents (arguments as there;
        ``kept`` as in :meth:`denoise`)."""
        steps = self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance = self.config.guidance_scale if guidance_scale is None else guidance_scale
        self._check_settings(cond, steps, guidance, generator)
        cond = self.fit_conditioning(cond)
        tokens = self.encode_tokens(cond, guidance)
        latents = self.prepare_latents(cond.batch_size, generator, latents)
        return self.denoise(latents, tokens, steps, guidance, callback, kept)

    def fit_conditioning(self, cond: Conditioning) -> Conditioning:
        """Resize the conditioning's images and maps to the model's square ``image_size`` (boxes are normalised, so they stay)."""
        size = (self.config.image_size,) * 2
        if tuple(cond.background_image.shape[-2:]) == size and tuple(cond.appearance_images.shape[-2:]) == size:
            return cond.to(self.device)
        B, S = cond.appearance_images.shape[:2]
        return replace(cond, appearance_images=resize_images(cond.appearance_images.flatten(0, 1), size).unflatten(0, (B, S)),
                       appearance_depths=resize_maps(cond.appearance_depths, size),
                       appearance_slots=resize_maps(cond.appearance_slots, size),
                       background_image=resize_images(cond.background_image, size)).to(self.device)

    def encode_tokens(self, cond: Conditioning, guidance_scale: float) -> AssetTokens:
        """Asset tokens for the batch; with guidance (scale != 1) the null comes first, doubling the batch."""
        if guidance_scale != 1.0:
            everything = torch.ones(cond.batch_size, dtype=torch.bool, device=cond.object_mask.device)
            cond = Conditioning.collate([cond.drop_objects(everything), cond])
        with self._autocast():
            return self.asset_encoder(cond, spatial_size=(self.latent_size, self.latent_size))

    def prepare_latents(self, batch_size: int, generator: torch.Generator | None, latents: Tensor | None = None) -> Tensor:
        """(B, C, h, w) float32 unit Gaussian noise drawn on the CPU from ``generator`` (device-independent)."""
        shape = self.latent_shape(batch_size)
        if latents is None:
            latents = torch.randn(shape, generator=generator, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValidationError(f"latents: shape {tuple(latents.shape)}, expected {shape}")
        elif latents.is_meta or not bool(torch.isfinite(latents).all()):
            raise ValidationError("latents: expected finite numbers on a real device (not 'meta')")
        return latents.to(self.device, torch.float32) * float(getattr(self.scheduler, "init_noise_sigma", 1.0))

    def denoise(self, latents: Tensor, tokens: AssetTokens, num_inference_steps: int, guidance_scale: float,
                callback: StepCallback | None = None, kept: KeptLatents | None = None) -> Tensor:
        """Run the sampler from noise to clean latents, with classifier-free guidance when the scale is not 1.

        With ``kept``, after every step the latents outside ``kept.free`` are replaced by
        ``kept.latents`` noised to the level the sampler has reached, with the initial noise
        (blended sampling): the model sees the photo there at every step and draws the free
        region to join it, and the result there is the photo's latents.
        """
        guided = guidance_scale != 1.0
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        timesteps = self.scheduler.timesteps
        noise = latents / float(getattr(self.scheduler, "init_noise_sigma", 1.0))
        for step, t in enumerate(timesteps, start=1):
            x = torch.cat([latents, latents]) if guided else latents
            if hasattr(self.scheduler, "scale_model_input"):  # flow matching has no input scaling
                x = self.scheduler.scale_model_input(x, t)
            with self._autocast():
                pred = self.denoiser(x, t.expand(x.shape[0]), tokens.tokens, tokens.mask, tokens.spatial).float()
            if guided:
                null, full = pred.chunk(2)
                pred = null + guidance_scale * (full - null)
            latents = self.scheduler.step(pred, t, latents, return_dict=False)[0]
            if kept is not None:
                latents = torch.where(kept.free, latents, self._noised(kept.latents, noise, step))
            if callback is not None:
                callback(step, len(timesteps))
        return latents

    def _noised(self, clean: Tensor, noise: Tensor, step: int) -> Tensor:
        """(B, C, h, w) ``clean`` latents at the noise level the sampler reaches after ``step`` steps (clean after the last)."""
        timesteps = self.scheduler.timesteps
        if step >= len(timesteps):
            return clean
        if is_flow_matching(self.scheduler):
            sigma = float(self.scheduler.sigmas[step])
            return (1 - sigma) * clean + sigma * noise
        return self.scheduler.add_noise(clean, noise, timesteps[step].expand(len(clean)))

    def decode_latents(self, latents: Tensor, cond: Conditioning | None = None) -> Tensor:
        """(B, C, h, w) scaled latents -> (B, 3, H, W) float in [0, 1].

        Args:
            latents: the latents.
            cond: the batch's conditioning, when the latents render it: a decoder built with
                ``reference_channels`` then takes detail from the objects' own pixels
                (:func:`~neuralassets.pipelines.surface_splatting.object_reference`). None decodes the latents alone.
        """
        return self._decode(latents, self._reference(latents, cond))

    def _reference(self, latents: Tensor, cond: Conditioning | None) -> Tensor | None:
        """(B, 4, H, W) the decoder's object reference for rendering ``cond``, or None when it takes none."""
        if cond is None or not self.uses_reference:
            return None
        size = (latents.shape[-2] * downsampling_factor(self.vae), latents.shape[-1] * downsampling_factor(self.vae))
        return object_reference(cond.to(self.device), size, self.thresholds)

    def _decode(self, latents: Tensor, reference: Tensor | None) -> Tensor:
        with self._autocast():
            scaled = latents / self.vae.config.scaling_factor
            images = (self.vae.decode(scaled) if reference is None else self.vae.decode(scaled, reference=reference)).sample.float()
        return ((images + 1) / 2).clamp(0, 1)

    @property
    def uses_reference(self) -> bool:
        """Whether the decoder takes detail from the objects' pixels (built with ``reference_channels``)."""
        return takes_reference(self.vae)

    def encode_images(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, C, h, w) scaled latents (the posterior mode, deterministic)."""
        with self._autocast():
            posterior = self.vae.encode(images.to(self.device) * 2 - 1).latent_dist
        return posterior.mode().float() * self.vae.config.scaling_factor

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def _check_settings(self, cond: Conditioning, steps: int, guidance: float, generator: torch.Generator | None) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValidationError(f"num_inference_steps: {steps!r} must be an integer >= 1")
        if not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
            raise ValidationError(f"guidance_scale: {guidance!r} must be a finite number >= 0")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValidationError(f"generator: expected a torch.Generator or None, got {type(generator).__name__} "
                                  "(for a seed s pass torch.Generator().manual_seed(s))")
        if cond.max_objects > self.config.max_objects:
            raise ValidationError(f"conditioning has {cond.max_objects} object slots; the model has {self.config.max_objects}")
        for f in fields(cond):
            if getattr(cond, f.name).is_meta:
                raise ValidationError(f"conditioning.{f.name}: tensor is on the 'meta' device and holds no data")


def to_output_type(images: Tensor, output_type: str) -> Tensor | np.ndarray | list[Image.Image]:
    """(B, 3, H, W) float in [0, 1] -> ``"pt"`` (unchanged), ``"np"`` (B, H, W, 3) uint8 or ``"pil"`` list."""
    if output_type == "pt":
        return images.cpu()
    arrays = to_numpy_image(images)
    return arrays if output_type == "np" else [Image.fromarray(a) for a in arrays]


def _unique_images(images: Tensor, distinct: Tensor) -> tuple[list[int], list[int]]:
    """Indices of the first exact copies among (B, ...) ``images``, and for each image its copy's position there.

    ``distinct`` (B,) bool marks images that only match themselves. ``images[unique][inverse]``
    equals ``images``.
    """
    unique: list[int] = []
    inverse: list[int] = []
    for i, image in enumerate(images):
        match = None if distinct[i] else next(
            (k for k, j in enumerate(unique) if not distinct[j] and torch.equal(images[j], image)), None)
        if match is None:
            match = len(unique)
            unique.append(i)
        inverse.append(match)
    return unique, inverse


def _resolve(folder_or_id: str | os.PathLike | None) -> Path:
    if folder_or_id is None:
        if not (DEFAULT_WEIGHTS / "model_index.json").is_file():
            raise WeightsError(
                f"no default weights in {DEFAULT_WEIGHTS.name}/ (model_index.json missing): train them with the stages in "
                "configs/shipped/ (`neuralassets train --config configs/shipped/01_autoencoder.yaml`, then 02 to 10; see "
                "the README) and save the last run's pipeline/ folder to weights/, or pass a folder or hub id to from_pretrained")
        return DEFAULT_WEIGHTS
    path = Path(folder_or_id)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise WeightsError(f"{path}: not a saved pipeline (model_index.json missing)")
        return path
    if path.exists() or str(folder_or_id).count("/") != 1:
        raise WeightsError(f"{folder_or_id}: no such pipeline folder")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(folder_or_id)))
    except Exception as e:  # offline, unknown repo or no access: all mean "cannot obtain these weights"
        raise WeightsError(f"{folder_or_id}: not a local folder and cannot be downloaded from the hub: {e}") from e


def _read_config(path: Path) -> dict:
    return read_json(path, WeightsError, "file is missing")


def _part_config(path: Path, cls: type) -> dict:
    """A part's saved ``config.json``, refused when it names arguments ``cls`` does not take."""
    config = _read_config(path)
    try:
        check_config_keys(cls, config, cls.__name__)
    except ConfigError as e:
        raise WeightsError(f"{path}: {e}") from None
    return config
