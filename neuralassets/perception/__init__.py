"""Perception: turn a video (or two frames) into a Scene of neural assets.

Segmenters find object masks per frame, trackers link them into tracks, lifters turn
tracked masks into 3D boxes (with depth, or on the ground plane), and :func:`extract`
chains them with camera estimation. By default a small learned model (:mod:`.learned`,
shipped in ``weights/perception``) segments, estimates metric depth and places 3D boxes;
without its weights the classical stack needs none. SAM, SAM 2, Grounding DINO / OWLv2
and Depth Anything plug in from a local folder or hub id.
"""

from .budget import SlotFit, SlotWarning, edited_asset_ids, fit_to_slots, salience
from .camera import CameraConfig, CameraMotion, assumed_camera, assumed_intrinsics, estimate_camera_motion, estimate_up
from .classical import ClassicalConfig, ClassicalSegmenter
from .detections import CroppedMask, FrameDetections, Segmenter, Tracker, Tracks, mask_iou
from .extract import ExtractionConfig, ExtractionWarning, extract, extract_video
from .ground_truth import GroundTruthSegmenter
from .learned import LearnedPerception, PerceptionConfig, PerceptionNet, boxes_from_estimates, default_perception
from .lifting import DepthLifter, GroundPlaneLifter, LiftedBoxes, LiftingConfig, camera_from_floor, fit_floor, stabilise
from .tracking import MaskTracker, TrackerConfig

__all__ = [
    "assumed_camera", "assumed_intrinsics", "boxes_from_estimates", "camera_from_floor", "CameraConfig", "CameraMotion",
    "ClassicalConfig", "ClassicalSegmenter", "CroppedMask", "default_perception", "DepthLifter", "edited_asset_ids",
    "estimate_camera_motion", "estimate_up", "extract", "extract_video", "ExtractionConfig", "ExtractionWarning",
    "fit_floor", "fit_to_slots", "FrameDetections", "GroundPlaneLifter", "GroundTruthSegmenter", "LearnedPerception",
    "LiftedBoxes", "LiftingConfig", "mask_iou", "MaskTracker", "PerceptionConfig", "PerceptionNet", "salience",
    "Segmenter", "SlotFit", "SlotWarning", "stabilise", "Tracker", "TrackerConfig", "Tracks",
]
