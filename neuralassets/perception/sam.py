"""Segment Anything segmenters: the ``segment-anything`` package and transformers' SAM / SAM 2.

Both run *automatic* segmentation (a grid of point prompts, low-quality and duplicate
masks dropped) or, through :meth:`~SamSegmenter.segment_boxes`, masks for given boxes (the
text-prompted detector uses that). Weights come from a local file or folder (or, for
transformers, a hub id already in the local cache); nothing is downloaded by the library.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from ..errors import WeightsError
from ..video import to_uint8_frames
from .detections import FrameDetections, non_max_suppression
from .weights import load_model_and_processor


@dataclass
class SamArchitecture:
    """The numbers that fix a ``segment_anything`` Sam's tensor shapes (ViT-B by default)."""

    encoder_embed_dim: int = 768  # ViT width
    encoder_depth: int = 12  # ViT blocks
    encoder_num_heads: int = 12  # attention heads per block
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)  # blocks with global (not windowed) attention
    image_size: int = 1024  # input side after resizing the longest side
    patch_size: int = 16  # ViT patch side
    window_size: int = 14  # windowed-attention side, in patches
    prompt_embed_dim: int = 256  # width of prompt and image embeddings
    decoder_mlp_dim: int = 2048  # two-way transformer MLP width
    decoder_num_heads: int = 8  # two-way transformer heads

    @classmethod
    def named(cls, name: str) -> SamArchitecture:
        """``"vit_b"``, ``"vit_l"`` or ``"vit_h"`` as released with SAM."""
        table = {
            "vit_b": cls(),
            "vit_l": cls(1024, 24, 16, (5, 11, 17, 23)),
            "vit_h": cls(1280, 32, 16, (7, 15, 23, 31)),
        }
        if name not in table:
            raise WeightsError(f"SAM model type {name!r} is unknown; expected one of {sorted(table)}")
        return table[name]


def build_sam(arch: SamArchitecture):
    """A randomly initialised ``segment_anything.modeling.Sam`` of the given architecture."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = arch.image_size // arch.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.encoder_depth, embed_dim=arch.encoder_embed_dim, img_size=arch.image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=arch.encoder_num_heads,
            patch_size=arch.patch_size, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=tuple(arch.encoder_global_attn_indexes), window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim),
        prompt_encoder=PromptEncoder(embed_dim=arch.prompt_embed_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(arch.image_size, arch.image_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=arch.prompt_embed_dim, mlp_dim=arch.decoder_mlp_dim,
                                          num_heads=arch.decoder_num_heads),
            transformer_dim=arch.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def load_sam(checkpoint: str | os.PathLike, arch: SamArchitecture | str = "vit_b"):
    """A ``segment_anything`` Sam with weights from a released ``.pth`` state dict.

    The file is read with ``torch.load(..., weights_only=True)`` (tensors only, nothing
    unpickled) and must match ``arch`` key for key.

    Raises:
        WeightsError: the file is missing, unreadable, holds pickled objects other than tensors
            (refused by ``weights_only=True``; nothing of it runs) or does not fit the architecture.
    """
    arch = SamArchitecture.named(arch) if isinstance(arch, str) else arch
    if not os.path.isfile(checkpoint):
        raise WeightsError(f"{checkpoint}: SAM checkpoint not found")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or non-tensor files
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if refused:  # weights_only stopped at a pickled object that is not a tensor, before creating it
            raise WeightsError(f"{checkpoint}: refused: it holds a pickled Python object ({refused.group(1)}) besides "
                               "tensors, and such objects are never loaded") from None
        raise WeightsError(f"{checkpoint}: not a readable tensor state dict ({type(e).__name__}: {e})") from None
    model = build_sam(arch)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{checkpoint}: does not match the SAM architecture {arch} ({str(e).splitlines()[0]})") from None
    return model


class _BoxPromptedSegmenter:
    """``segment_boxes`` for both SAM wrappers; each supplies ``_masks_for_boxes``."""

    @torch.no_grad()
    def segment_boxes(self, frame: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Masks for pixel boxes (K, 4) xyxy in one frame (3, H, W); returns masks (K, H, W) bool and scores (K,) in [0, 1]."""
        H, W = frame.shape[-2:]
        if len(boxes) == 0:
            return torch.zeros(0, H, W, dtype=torch.bool), torch.zeros(0)
        masks, scores = self._masks_for_boxes(to_uint8_frames(frame[None])[0], boxes.float())
        return masks, scores.clamp(0, 1)


class SamSegmenter(_BoxPromptedSegmenter):
    """Automatic or box-prompted segmentation with the ``segment-anything`` package.

    Args:
        model: a ``segment_anything.modeling.Sam`` (see :func:`load_sam`).
        points_per_side: point-prompt grid of automatic segmentation.
        pred_iou_thresh, stability_score_thresh: SAM's quality filters (0 keeps everything).
        min_area: masks smaller than this fraction of the frame are dropped.
        max_area: masks larger than this fraction (floor, backdrop) are dropped.
    """

    def __init__(self, model, points_per_side: int = 16, pred_iou_thresh: float = 0.86, stability_score_thresh: float = 0.9,
                 min_area: float = 0.001, max_area: float = 0.3) -> None:
        from segment_anything import SamAutomaticMaskGenerator, SamPredictor

        self.model = model
        self.generator = SamAutomaticMaskGenerator(model, points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
                                                   stability_score_thresh=stability_score_thresh)
        self.predictor = SamPredictor(model)
        self.min_area, self.max_area = min_area, max_area

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, arch: SamArchitecture | str = "vit_b", **kwargs) -> SamSegmenter:
        """Load a released ``.pth`` (see :func:`load_sam`) and wrap it."""
        return cls(load_sam(checkpoint, arch), **kwargs)

    @torch.no_grad()
    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """Automatic masks for each frame of ``frames`` (T, 3, H, W) float in [0, 1]; scores are SAM's predicted IoU."""
        out = []
        for image in to_uint8_frames(frames):
            found = self.generator.generate(image)
            masks = torch.from_numpy(np.stack([f["segmentation"] for f in found])) if found else None
            scores = torch.tensor([float(f["predicted_iou"]) for f in found])
            out.append(_filter(masks, scores, image.shape[:2], self.min_area, self.max_area))
        return out

    def _masks_for_boxes(self, image: np.ndarray, boxes: Tensor) -> tuple[Tensor, Tensor]:
        self.predictor.set_image(image)
        boxes_in = self.predictor.transform.apply_boxes_torch(boxes, image.shape[:2])
        masks, scores, _ = self.predictor.predict_torch(None, None, boxes=boxes_in, multimask_output=False)
        return masks[:, 0].bool(), scores[:, 0].float()


class HFSamSegmenter(_BoxPromptedSegmenter):
    """Automatic or box-prompted segmentation with transformers' ``SamModel`` or ``Sam2Model``.

    Args:
        model: a ``SamModel`` / ``Sam2Model``.
        processor: its ``SamProcessor`` / ``Sam2Processor``.
        points_per_side: point-prompt grid of automatic segmentation.
        points_per_batch: prompts decoded at once.
        score_threshold: masks whose predicted IoU is lower are dropped.
        nms_threshold: a mask overlapping a better one by more than this IoU is dropped.
        min_area, max_area: kept mask sizes as fractions of the frame.
    """

    def __init__(self, model, processor, points_per_side: int = 16, points_per_batch: int = 64, score_threshold: float = 0.8,
                 nms_threshold: float = 0.7, min_area: float = 0.001, max_area: float = 0.3) -> None:
        self.model, self.processor = model.eval(), processor
        self.points_per_side, self.points_per_batch = points_per_side, points_per_batch
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.min_area, self.max_area = min_area, max_area

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> HFSamSegmenter:
        """Load a SAM or SAM 2 checkpoint folder (or cached hub id); the config's ``model_type`` picks the class."""
        from transformers import AutoConfig

        try:
            model_type = AutoConfig.from_pretrained(name_or_path).model_type
        except (OSError, ValueError) as e:  # no folder or hub id, no config.json, or one without a known model_type
            raise WeightsError(f"{name_or_path}: cannot load a SAM or SAM 2 checkpoint: no usable config.json ({e})") from None
        if model_type == "sam":
            from transformers import SamModel as Model
            from transformers import SamProcessor as Processor
        elif model_type == "sam2":
            from transformers import Sam2Model as Model
            from transformers import Sam2Processor as Processor
        else:
            raise WeightsError(f"{name_or_path}: model_type {model_type!r} is not 'sam' or 'sam2'")
        model, processor = load_model_and_processor(Model, Processor, name_or_path, f"a {model_type.upper()} checkpoint")
        return cls(model, processor, **kwargs)

    def _decode(self, image: np.ndarray, **prompts) -> tuple[Tensor, Tensor]:
        """(K, H, W) bool masks and (K,) predicted IoU for K prompts of one uint8 image."""
        inputs = self.processor(images=image, return_tensors="pt", **prompts)
        out = self.model(**inputs, multimask_output=False)
        sizes = [inputs["original_sizes"]]
        if "reshaped_input_sizes" in inputs:
            sizes.append(inputs["reshaped_input_sizes"])
        masks = self.processor.post_process_masks(out.pred_masks, *sizes)[0][:, 0]
        return masks.bool(), out.iou_scores[0, :, 0].float()

    @torch.no_grad()
    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """Automatic masks for each frame of ``frames`` (T, 3, H, W) float in [0, 1] from a grid of point prompts."""
        out = []
        H, W = frames.shape[-2:]
        n = self.points_per_side
        xs = (np.arange(n) + 0.5) / n * W
        ys = (np.arange(n) + 0.5) / n * H
        grid = [[float(x), float(y)] for y in ys for x in xs]
        for image in to_uint8_frames(frames):
            masks, scores = [], []
            for i in range(0, len(grid), self.points_per_batch):
                batch = grid[i:i + self.points_per_batch]
                m, s = self._decode(image, input_points=[[[p] for p in batch]], input_labels=[[[1] for _ in batch]])
                masks.append(m)
                scores.append(s)
            masks_t, scores_t = torch.cat(masks), torch.cat(scores)
            keep = scores_t >= self.score_threshold
            masks_t, scores_t = masks_t[keep], scores_t[keep]
            if len(masks_t):
                order = non_max_suppression(masks_t, scores_t, self.nms_threshold)
                masks_t, scores_t = masks_t[order], scores_t[order]
            out.append(_filter(masks_t if len(masks_t) else None, scores_t.clamp(0, 1), (H, W), self.min_area, self.max_area))
        return out

    def _masks_for_boxes(self, image: np.ndarray, boxes: Tensor) -> tuple[Tensor, Tensor]:
        return self._decode(image, input_boxes=[boxes.tolist()])


def _filter(masks: Tensor | None, scores: Tensor, size: tuple[int, int], min_area: float, max_area: float) -> FrameDetections:
    H, W = size
    if masks is None or len(masks) == 0:
        return FrameDetections.empty(H, W)
    area = masks.flatten(1).float().mean(1)
    keep = (area >= min_area) & (area <= max_area)
    return FrameDetections.from_masks(masks[keep], scores[keep])


__all__ = ["HFSamSegmenter", "SamArchitecture", "SamSegmenter", "build_sam", "load_sam"]
