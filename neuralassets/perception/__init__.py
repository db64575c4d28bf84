"""Perception: turn a video (or two frames) into a Scene of neural assets.

Segmenters find object masks per frame, trackers link them into tracks, lifters turn
tracked masks into 3D boxes (with depth, or on the ground plane), and :func:`extract`
chains them with camera estimation. The defaults need no model weights; SAM, SAM 2,
Grounding DINO / OWLv2 and Depth Anything plug in from a local folder or hub id.
"""

from .camera import CameraConfig, assumed_camera, assumed_intrinsics, estimate_camera_motion
from .classical import ClassicalConfig, ClassicalSegmenter
from .detections import FrameDetections, Segmenter, Tracker, Tracks, mask_iou
from .extract import ExtractionConfig, extract
from .ground_truth import GroundTruthSegmenter
from .lifting import DepthLifter, GroundPlaneLifter, LiftedBoxes, LiftingConfig, camera_from_floor, fit_floor
from .tracking import MaskTracker, TrackerConfig

__all__ = [
    "CameraConfig", "ClassicalConfig", "ClassicalSegmenter", "DepthLifter", "ExtractionConfig", "FrameDetections",
    "GroundPlaneLifter", "GroundTruthSegmenter", "LiftedBoxes", "LiftingConfig", "MaskTracker", "Segmenter", "Tracker",
    "TrackerConfig", "Tracks", "assumed_camera", "assumed_intrinsics", "camera_from_floor", "estimate_camera_motion",
    "extract", "fit_floor", "mask_iou",
]
