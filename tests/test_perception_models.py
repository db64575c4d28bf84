"""Real-model backends, wired end to end with tiny randomly initialised models built and saved here.

Random weights make the masks meaningless; these tests check loading from local files,
prompt coordinates, output shapes, and that every backend drives extract() to a valid Scene.
"""
import numpy as np
import pytest
import torch

from neuralassets import Scene
from neuralassets.errors import WeightsError
from neuralassets.perception import FrameDetections, extract

pytest.importorskip("segment_anything")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def clip():
    from neuralassets.data import GeneratorConfig, generate_scene

    return generate_scene(7, GeneratorConfig(image_size=64, num_frames=3, min_objects=2, max_objects=3))


def _check(dets, frames):
    T, _, H, W = frames.shape
    assert len(dets) == T
    for d in dets:
        assert isinstance(d, FrameDetections) and d.masks.shape[1:] == (H, W) and d.masks.dtype == torch.bool
        assert ((d.scores >= 0) & (d.scores <= 1)).all()
        assert (d.boxes[:, 2:] >= d.boxes[:, :2]).all() and (d.boxes[:, 2] <= W).all() and (d.boxes[:, 3] <= H).all()


# -- segment-anything package ------------------------------------------------------------

TINY_SAM = dict(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=(1,), image_size=64,
                patch_size=16, window_size=2, prompt_embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2)


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    from neuralassets.perception.sam import SamArchitecture, build_sam

    torch.manual_seed(0)
    arch = SamArchitecture(**TINY_SAM)
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.save(build_sam(arch).state_dict(), path)
    return path, arch


def test_sam_checkpoint_loads_with_weights_only_and_segments(sam_checkpoint, clip):
    from neuralassets.perception.sam import SamSegmenter, load_sam

    path, arch = sam_checkpoint
    model = load_sam(path, arch)
    assert torch.equal(model.state_dict()["mask_decoder.iou_token.weight"],
                       torch.load(path, weights_only=True)["mask_decoder.iou_token.weight"])
    seg = SamSegmenter(model, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_area=0.0, max_area=1.0)
    _check(seg.segment(clip.frames), clip.frames)
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [10.0, 10.0, 60.0, 50.0]])
    masks, scores = seg.segment_boxes(clip.frames[0], boxes)
    assert masks.shape == (2, 64, 64) and masks.dtype == torch.bool and scores.shape == (2,) and 0 <= scores.min() <= scores.max() <= 1
    scene = extract(clip.frames, seg, camera=clip.cameras, depth=clip.depth)
    assert scene.metadata["extraction"]["segmenter"] == "SamSegmenter"
    scene.validate()


def test_sam_checkpoint_errors(sam_checkpoint, tmp_path):
    from neuralassets.perception.sam import SamArchitecture, load_sam

    path, arch = sam_checkpoint
    with pytest.raises(WeightsError, match="not found"):
        load_sam(tmp_path / "missing.pth", arch)
    with pytest.raises(WeightsError, match="does not match the SAM architecture"):
        load_sam(path, SamArchitecture(**{**TINY_SAM, "encoder_embed_dim": 48}))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable tensor state dict"):
        load_sam(tmp_path / "junk.pth", arch)
    with pytest.raises(WeightsError, match="unknown"):
        SamArchitecture.named("vit_x")


# -- transformers SAM / SAM 2 ------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_sam(tmp_path_factory):
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor
    from transformers.models.sam.configuration_sam import SamMaskDecoderConfig, SamPromptEncoderConfig, SamVisionConfig

    torch.manual_seed(0)
    vision = SamVisionConfig(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=64,
                             patch_size=8, window_size=4, global_attn_indexes=[1], mlp_dim=64, num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16)
    folder = tmp_path_factory.mktemp("hf_sam")
    SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)).save_pretrained(folder)
    SamProcessor(SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})).save_pretrained(folder)
    return folder


def _sam2_kwargs(hidden=128):
    """A tiny SAM 2 whose memory path works: transformers fixes the memory width at 64 and needs a wider hidden size."""
    from transformers import Sam2HieraDetConfig, Sam2MaskDecoderConfig, Sam2PromptEncoderConfig, Sam2VisionConfig

    backbone = Sam2HieraDetConfig(hidden_size=12, image_size=128, patch_stride=4, patch_kernel_size=7, patch_padding=3,
                                  blocks_per_stage=[1, 1, 1, 1], embed_dim_per_stage=[12, 24, 48, 96],
                                  num_attention_heads_per_stage=[1, 1, 1, 1])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[96, 48, 24, 12],
                              backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=hidden)
    return dict(vision_config=vision,
                prompt_encoder_config=Sam2PromptEncoderConfig(image_size=128, patch_size=16, mask_input_channels=8,
                                                              hidden_size=hidden),
                mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=hidden, mlp_dim=64, num_attention_heads=4,
                                                          iou_head_hidden_dim=32),
                memory_attention_hidden_size=hidden, memory_encoder_hidden_size=hidden, memory_encoder_output_channels=64,
                memory_attention_rope_feat_sizes=[8, 8], image_size=128, mask_downsampler_embed_dim=hidden,
                memory_fuser_embed_dim=hidden, memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=32)


@pytest.fixture(scope="module")
def hf_sam2(tmp_path_factory):
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf_sam2")
    Sam2Model(Sam2Config(**_sam2_kwargs())).save_pretrained(folder)
    Sam2Processor(Sam2ImageProcessor(size={"height": 128, "width": 128}), target_size=128).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("which", ["hf_sam", "hf_sam2"])
def test_transformers_sam_automatic_and_box_prompts(which, request, clip):
    from neuralassets.perception.sam import HFSamSegmenter

    folder = request.getfixturevalue(which)
    seg = HFSamSegmenter.from_pretrained(folder, points_per_side=3, score_threshold=0.0, min_area=0.0, max_area=1.0)
    assert type(seg.model).__name__ == ("SamModel" if which == "hf_sam" else "Sam2Model")
    dets = seg.segment(clip.frames[:2])
    _check(dets, clip.frames[:2])
    masks, scores = seg.segment_boxes(clip.frames[0], torch.tensor([[2.0, 3.0, 30.0, 40.0]]))
    assert masks.shape == (1, 64, 64) and masks.dtype == torch.bool and scores.shape == (1,) and 0 <= scores.min() <= scores.max() <= 1
    scene = extract(clip.frames[:2], seg, camera=clip.cameras[:2], depth=clip.depth[:2])
    scene.validate()


def test_transformers_sam_rejects_other_models(tmp_path):
    from transformers import BertConfig

    from neuralassets.perception.sam import HFSamSegmenter

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="is not 'sam' or 'sam2'"):
        HFSamSegmenter.from_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="cannot load a SAM or SAM 2 checkpoint: no usable config.json"):
        HFSamSegmenter.from_pretrained(tmp_path / "missing")


# -- SAM 2 video propagation -------------------------------------------------------------

@pytest.mark.slow
def test_sam2_video_tracker_propagates_ground_truth_prompts(tmp_path, clip):
    from transformers import Sam2ImageProcessor, Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor, Sam2VideoVideoProcessor

    from neuralassets.perception import GroundTruthSegmenter
    from neuralassets.perception.tracking import Sam2VideoTracker

    torch.manual_seed(0)
    Sam2VideoModel(Sam2VideoConfig(**_sam2_kwargs())).save_pretrained(tmp_path)
    Sam2VideoProcessor(image_processor=Sam2ImageProcessor(size={"height": 128, "width": 128}),
                       video_processor=Sam2VideoVideoProcessor(size={"height": 128, "width": 128}),
                       target_size=128).save_pretrained(tmp_path)
    tracker = Sam2VideoTracker.from_pretrained(tmp_path)
    dets = GroundTruthSegmenter(clip).segment(clip.frames)
    dets = [FrameDetections(d.masks, d.boxes, d.scores, d.labels) for d in dets]  # drop the ids: the tracker must assign
    tracks = tracker.track(clip.frames, dets)
    assert tracks.ids == list(range(1, len(dets[0]) + 1))
    assert tracks.masks.shape == (len(dets[0]), 3, 64, 64)
    assert tracks.labels == [dets[0].labels[k] for k in dets[0].scores.argsort(descending=True).tolist()]
    scene = extract(clip.frames, GroundTruthSegmenter(clip), tracker=tracker, camera=clip.cameras, depth=clip.depth)
    assert scene.metadata["extraction"]["tracker"] == "Sam2VideoTracker"
    scene.validate()


# -- text prompts -----------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "red", "mug", "blue", "cube"]


@pytest.fixture(scope="module")
def grounding_dino(tmp_path_factory):
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder = tmp_path_factory.mktemp("gdino")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    swin = SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], image_size=98,
                      out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4])
    text = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8,
            "max_position_embeddings": 32, "model_type": "bert", "vocab_size": len(VOCAB)}
    config = GroundingDinoConfig(d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=4,
                                 decoder_attention_heads=4, encoder_ffn_dim=8, decoder_ffn_dim=8, num_queries=5,
                                 encoder_n_points=2, decoder_n_points=2, use_timm_backbone=False, backbone_config=swin,
                                 max_text_len=16, text_config=text)
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    GroundingDinoProcessor(GroundingDinoImageProcessor(size={"shortest_edge": 98, "longest_edge": 98}),
                           BertTokenizer(str(folder / "vocab.txt"))).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_grounding_dino_prompts_sam_with_text(grounding_dino, sam_checkpoint, clip):
    from neuralassets.perception.sam import SamSegmenter
    from neuralassets.perception.text_prompt import TextPromptedSegmenter

    path, arch = sam_checkpoint
    seg = TextPromptedSegmenter.from_pretrained(grounding_dino, SamSegmenter.from_checkpoint(path, arch),
                                                ["the red mug", "blue cube"], box_threshold=0.0, text_threshold=0.0)
    assert seg.grounding
    boxes, scores, labels = seg.detect(clip.frames[0])
    assert boxes.shape == (5, 4) and scores.shape == (5,)  # num_queries boxes pass a zero threshold
    assert ((boxes[:, 2:] >= boxes[:, :2]) & (boxes[:, 2:] <= 64)).all()
    assert set(labels) <= {"the red mug", "blue cube"}
    dets = seg.segment(clip.frames[:2])
    _check(dets, clip.frames[:2])
    assert all(set(d.labels) <= {"the red mug", "blue cube"} for d in dets)
    seg.max_detections = 2
    scene = extract(clip.frames[:2], seg, camera=clip.cameras[:2], depth=clip.depth[:2])
    assert all(a.category in ("the red mug", "blue cube") for a in scene.assets)


def _clip_tokenizer_files(folder):
    """Minimal CLIP BPE files: single characters and a few merges, with the special tokens last.

    OWL treats a query whose first id is 0 as padding and CLIP pools at the end-of-text
    token, so start/end of text get the two highest ids, as in the released vocabulary.
    Returns (pad, start, end) ids.
    """
    import json

    letters = list("abcdefghijklmnopqrstuvwxyz")
    merges = ["#version: 0.2", "r e", "m u"]
    tokens = ["!"] + letters + [c + "</w>" for c in letters] + [m.replace(" ", "") for m in merges[1:]]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    return 0, len(tokens) - 2, len(tokens) - 1


def test_owlv2_prompts_sam_with_text(tmp_path, sam_checkpoint, clip):
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    from neuralassets.perception.sam import SamSegmenter
    from neuralassets.perception.text_prompt import TextPromptedSegmenter

    pad, bos, eos = _clip_tokenizer_files(tmp_path)
    tokenizer = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), pad_token="!")
    text = dict(vocab_size=len(tokenizer), pad_token_id=pad, bos_token_id=bos, eos_token_id=eos, hidden_size=16,
                intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(0)
    Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(tmp_path)
    Owlv2Processor(Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(tmp_path)
    path, arch = sam_checkpoint
    seg = TextPromptedSegmenter.from_pretrained(tmp_path, SamSegmenter.from_checkpoint(path, arch), ["red mug", "cube"],
                                                box_threshold=0.0, max_detections=4)
    assert not seg.grounding
    boxes, scores, labels = seg.detect(clip.frames[0])
    assert boxes.shape == (4, 4) and set(labels) <= {"red mug", "cube"}
    _check(seg.segment(clip.frames[:1]), clip.frames[:1])


# -- Depth Anything ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def depth_anything(tmp_path_factory):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=56,
                            patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False, apply_layernorm=True)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14, depth_estimation_type="relative")
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("depth_anything")
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(folder)
    return folder


def test_depth_anything_gives_positive_relative_depth_scaled_by_the_floor(depth_anything, clip, tmp_path):
    from neuralassets.perception import GroundTruthSegmenter
    from neuralassets.perception.camera import ASSUMED_HEIGHT
    from neuralassets.perception.depth import DepthAnythingEstimator

    estimator = DepthAnythingEstimator.from_pretrained(depth_anything, batch_size=2)
    assert not estimator.metric
    depth = estimator.estimate(clip.frames)
    assert depth.shape == (3, 64, 64) and (depth >= 1).all() and (depth <= 50).all()
    assert np.isclose(float(depth.flatten(1).amin(1)[0]), 1.0)  # the nearest pixel has normalised disparity 1
    scene = extract(clip.frames, GroundTruthSegmenter(clip), depth_estimator=estimator)
    assert scene.metadata["extraction"]["depth"] == "DepthAnythingEstimator"
    assert float(scene.cameras[0].center[2]) == pytest.approx(ASSUMED_HEIGHT, rel=1e-3)
    Scene.load(scene.save(tmp_path / "scene"))
    with pytest.raises(WeightsError, match="cannot load a Depth Anything"):
        DepthAnythingEstimator.from_pretrained(tmp_path / "nothing")
