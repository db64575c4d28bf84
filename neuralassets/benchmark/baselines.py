"""Methods the benchmark compares, all behind one interface.

A method has a ``name`` and maps a list of :class:`~neuralassets.data.edit_cases.Case` to
``(B, 3, H, W)`` float images in [0, 1] (:meth:`Method.predict`); calling it on one case
returns ``(3, H, W)``. Baselines:

- :class:`IdentityMethod`: the source frame unchanged (what "doing nothing" scores);
- :class:`CopyPasteMethod`: the paper's "chained" style: cut each object that moves by its
  mask, warp it with the homography of a box face seen in both its source and target
  projected 3D boxes, inpaint the hole (OpenCV Telea) and paste in depth order;
- :class:`GeometricMethod`: the model's own inputs drawn by geometry alone
  (:class:`~neuralassets.pipelines.geometric.GeometricRenderer`: the photo reprojected through depth,
  each object's photo surface splatted at its new pose, the uncovered background inpainted);
- :class:`VAECeilingMethod`: the ground truth through a pipeline's autoencoder (no latent
  model can do better than its own decoder);
- :class:`PipelineMethod`: a neural assets pipeline rendering the edited scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from .. import geometry
from ..data.edit_cases import Case
from ..image_ops import box_mask, from_numpy_image, resize_images, to_numpy_image
from ..pipelines.edit_region import HOLE_DILATION
from ..pipelines.geometric import GeometricRenderer, inpaint
from ..scene import Scene

STATIC_TOLERANCE = 0.25  # pixels an object's projected corners may move and still count as static
MIN_FACE_AREA = 4.0  # square pixels a box face must cover in both views to define the warp
UPRIGHT_PREFERENCE = 0.25  # weight of a floor-parallel face's area against an upright face's when choosing the warp


class Method:
    """Base class: subclasses set ``name`` and implement :meth:`predict` or :meth:`predict_one`.

    ``uses_inputs`` False marks a method that reads only a case's ground truth (a ceiling),
    so it runs even on cases whose edit could not be applied to the inputs.
    """

    name = "method"
    uses_inputs = True

    def predict(self, cases: Sequence[Case]) -> Tensor:
        """Renders of the cases' target frames, (B, 3, H, W) float in [0, 1]."""
        return torch.stack([self.predict_one(c) for c in cases])

    def predict_one(self, case: Case) -> Tensor:
        """Render of one case's target frame, (3, H, W) float in [0, 1]."""
        return self.predict([case])[0]

    def __call__(self, case: Case) -> Tensor:
        return self.predict_one(case)


class IdentityMethod(Method):
    """Return the source frame: the score of an edit that does nothing."""

    name = "identity"

    def predict_one(self, case: Case) -> Tensor:
        return case.source.clone()


# The six faces of a box as (axis, side, four corner indices in cyclic order); corner i has bit k = side along axis k.
_FACES = tuple((axis, side, tuple(c for c in (0, 1, 3, 2, 4, 5, 7, 6) if (c >> axis) & 1 == side))
               for axis in range(3) for side in (0, 1))


@dataclass
class _BoxView:
    """A box seen by a camera: (8, 2) pixel corners, mean depth, which faces face the camera and which stand upright."""

    corners: np.ndarray
    depth: float
    visible_faces: list[bool]
    upright_faces: list[bool]


def _box_view(scene: Scene, asset_id: int, frame: int) -> _BoxView | None:
    """An asset's box at ``frame`` seen by that frame's camera, or None if a corner is behind the camera."""
    asset, cam = scene.asset(asset_id), scene.cameras[frame]
    center, size, rotation = asset.centers[frame], asset.sizes[frame], asset.rotations[frame]
    uv, depth = geometry.project_box(center, size, rotation, cam.K, cam.R, cam.t)
    if bool((depth <= 0).any()):
        return None
    eye = cam.center
    visible, upright = [], []
    for axis, side, _ in _FACES:
        normal = rotation[:, axis] * (1.0 if side else -1.0)
        face_centre = center + normal * size[axis] / 2
        visible.append(float(normal @ (eye - face_centre)) > 0)
        upright.append(abs(float(normal[2])) < 0.5)
    return _BoxView(uv.double().numpy(), float(depth.mean()), visible, upright)


def _quad_area(points: np.ndarray) -> float:
    """Signed area of a polygon given by (N, 2) points in order (shoelace)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _bounds(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _box_to_box(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(3, 3) scale-and-shift taking the 2D bounds of ``src`` points onto those of ``dst``."""
    (sx0, sy0, sx1, sy1), (dx0, dy0, dx1, dy1) = _bounds(src), _bounds(dst)
    ax, ay = (dx1 - dx0) / max(sx1 - sx0, 1e-6), (dy1 - dy0) / max(sy1 - sy0, 1e-6)
    return np.array([[ax, 0.0, dx0 - ax * sx0], [0.0, ay, dy0 - ay * sy0], [0.0, 0.0, 1.0]])


def _warp(src: _BoxView, dst: _BoxView) -> np.ndarray:
    """(3, 3) homography taking an object's pixels from its source box view to its target one.

    A box face seen in both views is a plane, so its four corners give an exact
    homography for that face (``cv2.getPerspectiveTransform``); the face that is largest
    in both views is used, upright faces first. When no face is seen in both (e.g. turned upside down) or the
    homography folds or blows up the object, the 2D bounds of the projected box are
    mapped onto each other instead.
    """
    if np.abs(src.corners - dst.corners).max() <= STATIC_TOLERANCE:
        return np.eye(3)
    fallback = _box_to_box(src.corners, dst.corners)
    best, best_score = None, 0.0
    for (_, _, idx), seen_src, seen_dst, upright in zip(_FACES, src.visible_faces, dst.visible_faces, src.upright_faces):
        if seen_src and seen_dst:
            area = min(abs(_quad_area(src.corners[list(idx)])), abs(_quad_area(dst.corners[list(idx)])))
            # An upright face carries the object's silhouette; a floor-parallel one shears it under translation.
            score = area * (1.0 if upright else UPRIGHT_PREFERENCE)
            if area >= MIN_FACE_AREA and score > best_score:
                best, best_score = list(idx), score
    if best is None:
        return fallback
    homography = cv2.getPerspectiveTransform(src.corners[best].astype(np.float32), dst.corners[best].astype(np.float32))
    # Sanity: the whole source box must map in front of the homography's horizon to about the target's width, height and area.
    mapped = np.concatenate([src.corners, np.ones((8, 1))], axis=1) @ homography.T
    if not np.isfinite(mapped).all() or (mapped[:, 2] <= 1e-6).any():
        return fallback
    mapped = mapped[:, :2] / mapped[:, 2:]
    (mx0, my0, mx1, my1), (dx0, dy0, dx1, dy1) = _bounds(mapped), _bounds(dst.corners)
    ratios = np.array([(mx1 - mx0) / max(dx1 - dx0, 1e-6), (my1 - my0) / max(dy1 - dy0, 1e-6),
                       _hull_area(mapped) / max(_hull_area(dst.corners), 1e-6)])
    return homography if ((ratios >= 0.5) & (ratios <= 2.0)).all() else fallback


def _hull_area(points: np.ndarray) -> float:
    """Area in square pixels of the convex hull of (N, 2) points."""
    return float(cv2.contourArea(cv2.convexHull(points.astype(np.float32))))


def _object_mask(scene: Scene, asset_id: int, frame: int) -> np.ndarray:
    """(H, W) uint8 mask (0/255) of an asset in a frame: its mask, or its 2D box when it has none."""
    asset = scene.asset(asset_id)
    if asset.masks is not None:
        return asset.masks[frame].numpy().astype(np.uint8) * 255
    return box_mask(asset.boxes_2d[frame][None], scene.height, scene.width).numpy().astype(np.uint8) * 255


class CopyPasteMethod(Method):
    """Cut, warp, inpaint and paste: the classical "chained" editing baseline.

    Every asset of the edited scene takes its pixels from its origin (``case.origins``) at
    the origin's frame 0. An asset whose origin is itself with the same projected box stays
    where it is; every other one is cut by its mask, warped by the homography that maps its
    origin box onto its target box (see :func:`_warp`) and pasted, nearest last. The places
    the moved and removed objects left in the source frame are filled by Telea inpainting
    first. After a background swap the canvas is the new background image (its own
    objects' boxes inpainted) instead of the source frame.
    """

    name = "copy-paste"

    def predict_one(self, case: Case) -> Tensor:
        original, scene = case.original, case.scene
        H, W = scene.height, scene.width
        background = scene.background
        if background is not None and not torch.equal(background.image, case.source):
            # A new background: its own objects (greyed boxes) are inpainted away, ours pasted on it.
            canvas = to_numpy_image(resize_images(background.image[None], (H, W))[0])
            scale = torch.tensor([W / background.image.shape[-1], H / background.image.shape[-2]] * 2, dtype=torch.float64)
            hole = box_mask(background.object_boxes.double() * scale, H, W, cover="touch").numpy().astype(np.uint8) * 255
        else:
            canvas = to_numpy_image(case.source)
            hole = np.zeros((H, W), np.uint8)
            kept = {asset_id for asset_id, (origin, origin_id) in case.origins.items()
                    if origin is original and origin_id == asset_id and not self._moves(case, asset_id)}
            for asset in original.assets:
                if asset.id not in kept and asset.visibility[0] > 0:
                    hole |= _object_mask(original, asset.id, 0)
        canvas = inpaint(canvas, hole, grow=HOLE_DILATION)

        layers = []  # (target depth, image, mask) pasted far to near
        for asset in scene.assets:
            origin, origin_id = case.origins[asset.id]
            if origin.asset(origin_id).visibility[0] <= 0:
                continue  # nothing of it was seen: nothing to paste
            src, dst = _box_view(origin, origin_id, 0), _box_view(scene, asset.id, 1)
            if src is None or dst is None:
                continue
            image, mask = to_numpy_image(origin.frames[0]), _object_mask(origin, origin_id, 0)
            homography = _warp(src, dst)
            warped = cv2.warpPerspective(image, homography, (W, H), flags=cv2.INTER_LINEAR)
            warped_mask = cv2.warpPerspective(mask, homography, (W, H), flags=cv2.INTER_LINEAR)
            layers.append((dst.depth, warped, warped_mask))
        for _, warped, warped_mask in sorted(layers, key=lambda layer: -layer[0]):
            alpha = (warped_mask.astype(np.float32) / 255.0)[..., None]
            canvas = (canvas * (1 - alpha) + warped * alpha).round().astype(np.uint8)
        return from_numpy_image(canvas)

    @staticmethod
    def _moves(case: Case, asset_id: int) -> bool:
        """Whether an asset's projected box differs between the source and the edited target."""
        src, dst = _box_view(case.original, asset_id, 0), _box_view(case.scene, asset_id, 1)
        if src is None or dst is None:
            return True
        return float(np.abs(src.corners - dst.corners).max()) > STATIC_TOLERANCE


class GeometricMethod(Method):
    """Render each case's edited scene with :class:`~neuralassets.pipelines.geometric.GeometricRenderer`: no learning, the model's inputs.

    Args:
        renderer: the renderer (default settings when None).
    """

    name = "geometric"

    def __init__(self, renderer: GeometricRenderer | None = None):
        self.renderer = renderer or GeometricRenderer()

    def predict_one(self, case: Case) -> Tensor:
        return self.renderer(case.scene, 1, source_frame=0)


class VAECeilingMethod(Method):
    """The ground-truth target encoded and decoded by a pipeline's autoencoder.

    No method that renders through this autoencoder can score above it.

    Args:
        pipeline: a ``NeuralAssetsPipeline`` (its ``reconstruct`` is used).
        name: the method's name in reports.
    """

    uses_inputs = False

    def __init__(self, pipeline, name: str = "vae-ceiling"):
        self.pipeline, self.name = pipeline, name

    @torch.no_grad()
    def predict(self, cases: Sequence[Case]) -> Tensor:
        return self.pipeline.reconstruct(torch.stack([c.target for c in cases]))


class PipelineMethod(Method):
    """A neural assets pipeline rendering each case's edited scene at frame 1 from frame 0.

    Args:
        pipeline: a ``NeuralAssetsPipeline``.
        name: the method's name in reports (e.g. the checkpoint folder's name).
        num_inference_steps: denoising steps (None: the model's default).
        guidance_scale: classifier-free guidance scale (None: the model's default).
        seed: seed of the sampling noise; case ``i`` of a task draws its noise from
            ``seed + i``, so results do not depend on how cases are batched.
        keep_unchanged: keep the source photo's pixels where the render leaves the scene
            unchanged, as the pipeline does by default (``NeuralAssetsPipeline.__call__``);
            False scores the model's render alone.
    """

    def __init__(self, pipeline, name: str, num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 seed: int = 0, keep_unchanged: bool = True):
        self.pipeline, self.name, self.seed = pipeline, name, seed
        self.num_inference_steps, self.guidance_scale = num_inference_steps, guidance_scale
        self.keep_unchanged = keep_unchanged

    @classmethod
    def from_pretrained(cls, folder_or_id: str, **kwargs) -> PipelineMethod:
        """Load a pipeline from a local folder or hub id; the method is named after its last path part."""
        from ..pipelines import NeuralAssetsPipeline

        name = Path(str(folder_or_id).rstrip("/")).name or str(folder_or_id)
        return cls(NeuralAssetsPipeline.from_pretrained(folder_or_id), name, **kwargs)

    @torch.no_grad()
    def predict(self, cases: Sequence[Case]) -> Tensor:
        shape = self.pipeline.latent_shape(1)
        noise = torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(self.seed + c.index)) for c in cases])
        return self.pipeline([c.scene for c in cases], target_frame=1, source_frame=0, latents=noise,
                             num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                             keep_unchanged=self.keep_unchanged).images.float()


__all__ = ["CopyPasteMethod", "GeometricMethod", "IdentityMethod", "Method", "PipelineMethod", "VAECeilingMethod"]
