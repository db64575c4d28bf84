"""Perception: turn a video (or two frames) into a Scene of neural assets.

Segmenters find object masks per frame, trackers link them into tracks, lifters turn
tracked masks into 3D boxes (with depth, or on the ground plane), and :func:`extract`
chains them with camera estimation. The defaults need no model weights; SAM, SAM 2,
Grounding DINO / OWLv2 and Depth Anything plug in from a local folder or hub id.
"""

from .budget import SlotFit, SlotWarning, edited_asset_ids, fit_to_slots, salience
from .camera import CameraConfig, CameraMotion, assumed_camera, assumed_intrinsics, estimate_camera_motion, estimate_up
from .classical import ClassicalConfig, ClassicalSegmenter
from .detections import CroppedMask, FrameDetections, Segmenter, Tracker, Tracks, mask_iou
from .extract import ExtractionConfig, ExtractionWarning, extract, extract_video
from .ground_truth import GroundTruthSegmenter
from .lifting import DepthLifter, GroundPlaneLifter, LiftedBoxes, LiftingConfig, camera_from_floor, fit_floor, stabilise
from .tracking import MaskTracker, TrackerConfig

__all__ = [
    "CameraConfig", "CameraMotion", "ClassicalConfig", "ClassicalSegmenter", "CroppedMask", "DepthLifter", "ExtractionConfig",
    "ExtractionWarning", "FrameDetections", "GroundPlaneLifter", "GroundTruthSegmenter", "LiftedBoxes", "LiftingConfig",
    "MaskTracker", "Segmenter", "Tracker", "TrackerConfig", "Tracks", "assumed_camera", "assumed_intrinsics",
    "camera_from_floor", "estimate_camera_motion", "estimate_up", "extract", "extract_video", "fit_floor", "mask_iou",
    "stabilise", "SlotFit", "SlotWarning", "edited_asset_ids", "fit_to_slots", "salience",
]
