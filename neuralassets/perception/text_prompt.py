"""Text-prompted segmentation: an open-vocabulary detector finds boxes for a phrase, SAM turns them into masks.

The detector is transformers' ``GroundingDinoForObjectDetection`` or
``Owlv2ForObjectDetection`` (any zero-shot object detector whose processor has
``post_process_grounded_object_detection``); the box-to-mask step is any segmenter with
``segment_boxes(frame, boxes)`` (:class:`~neuralassets.perception.sam.SamSegmenter`,
:class:`~neuralassets.perception.sam.HFSamSegmenter`).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ..errors import WeightsError
from ..video import to_uint8_frames
from .detections import FrameDetections
from .weights import load_model_and_processor


class TextPromptedSegmenter:
    """Masks of the objects a text prompt names ("the red mug"), frame by frame.

    Args:
        detector: a zero-shot object detection model (Grounding DINO or OWLv2).
        processor: its processor.
        box_segmenter: turns boxes into masks (``segment_boxes(frame, boxes) -> (masks, scores)``).
        prompts: phrases to look for; each detection is labelled with the phrase that found it.
        box_threshold: detections scoring lower are dropped.
        text_threshold: Grounding DINO's token-score threshold (ignored by OWLv2).
        max_detections: best-scoring boxes kept per frame.
    """

    def __init__(self, detector, processor, box_segmenter, prompts: list[str], box_threshold: float = 0.3,
                 text_threshold: float = 0.25, max_detections: int = 20) -> None:
        if not prompts:
            raise WeightsError("TextPromptedSegmenter: give at least one text prompt")
        self.detector, self.processor, self.box_segmenter = detector.eval(), processor, box_segmenter
        self.prompts = list(prompts)
        self.box_threshold, self.text_threshold, self.max_detections = box_threshold, text_threshold, max_detections
        self.grounding = "grounding_dino" in type(detector).__name__.lower() or \
            getattr(detector.config, "model_type", "") == "grounding-dino"

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, box_segmenter, prompts: list[str], **kwargs) -> TextPromptedSegmenter:
        """Load a Grounding DINO or OWLv2 checkpoint folder (or cached hub id) with its processor."""
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        model, processor = load_model_and_processor(AutoModelForZeroShotObjectDetection, AutoProcessor, name_or_path,
                                                    "a zero-shot object detector")
        return cls(model, processor, box_segmenter, prompts, **kwargs)

    @torch.no_grad()
    def detect(self, frame: Tensor) -> tuple[Tensor, Tensor, list[str]]:
        """Boxes (K, 4) pixel xyxy, scores (K,) and prompt labels for one frame (3, H, W) float in [0, 1]."""
        H, W = frame.shape[-2:]
        image = to_uint8_frames(frame[None])[0]
        if self.grounding:
            # Grounding DINO reads one caption; phrases are separated by " . "
            text = " . ".join(p.strip().rstrip(".") for p in self.prompts) + " ."
            inputs = self.processor(images=image, text=text, return_tensors="pt")
            outputs = self.detector(**inputs)
            result = self.processor.post_process_grounded_object_detection(
                outputs, inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
                target_sizes=[(H, W)])[0]
            labels = [self._prompt_for(str(t)) for t in result["text_labels"]]
        else:
            inputs = self.processor(images=image, text=[self.prompts], return_tensors="pt")
            outputs = self.detector(**inputs)
            # OWLv2 pads images to a square before detecting, so boxes are relative to the padded square
            side = max(H, W)
            result = self.processor.post_process_grounded_object_detection(
                outputs, threshold=self.box_threshold, target_sizes=[(side, side)], text_labels=[self.prompts])[0]
            labels = [str(t) for t in result["text_labels"]]
        boxes, scores = result["boxes"].float(), result["scores"].float()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, W)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, H)
        order = scores.argsort(descending=True)[: self.max_detections]
        return boxes[order], scores[order], [labels[i] for i in order.tolist()]

    def _prompt_for(self, text_label: str) -> str:
        """The prompt a Grounding DINO text span belongs to (the span may be a part of it)."""
        span = text_label.lower().replace("[sep]", "").strip(" .")
        for p in self.prompts:
            if span and (span in p.lower() or p.lower().strip(" .") in span):
                return p
        return self.prompts[0]

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """Detections for each frame of ``frames`` (T, 3, H, W) float in [0, 1]; scores are detector x mask scores."""
        out = []
        for frame in frames:
            boxes, scores, labels = self.detect(frame)
            masks, mask_scores = self.box_segmenter.segment_boxes(frame, boxes)
            keep = masks.flatten(1).any(1)
            det = FrameDetections(masks, boxes, scores * mask_scores, labels)
            out.append(det.select(keep))
        return out


__all__ = ["TextPromptedSegmenter"]
