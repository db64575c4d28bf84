"""Real pretrained models end to end: SAM finds the objects, DINOv2 + Stable Diffusion render them.

    # segment with SAM (a released .pth, read with torch.load(weights_only=True)) and render
    # with a Neural Assets pipeline fine-tuned from DINOv2 + Stable Diffusion (folder or hub id)
    python examples/real_models.py --video clip.mp4 --sam-checkpoint sam_vit_b_01ec64.pth \\
        --pipeline my_sd_pipeline

    # or assemble that pipeline's layout from the pretrained parts (DINOv2 folder or hub id,
    # a Stable Diffusion 1.5 / 2.1 folder with vae/ and unet/) and save it for fine-tuning
    python examples/real_models.py --sam-checkpoint sam_vit_b_01ec64.pth \\
        --dinov2 facebook/dinov2-base --sd stable-diffusion-2-1 --save sd_pipeline

An assembled pipeline's asset-token layers are untrained: its renders mean nothing until it
is fine-tuned (`neuralassets train` with `init_from: sd_pipeline` and the model config in the
README's "Using real pretrained models"). Nothing is downloaded: hub ids must already be in
the local cache. Without --video a held-out synthetic video is used.
"""

import argparse
from pathlib import Path

from common import fail, load_scene, render, save_row

from neuralassets import edits
from neuralassets.errors import NeuralAssetsError


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--video", default=None, metavar="PATH", help="video, GIF or folder of frames (default: a synthetic sample)")
    p.add_argument("--sam-checkpoint", default=None, metavar="PTH", help="segment-anything checkpoint (.pth)")
    p.add_argument("--sam-type", default="vit_b", choices=("vit_b", "vit_l", "vit_h"), help="its architecture")
    p.add_argument("--pipeline", default=None, metavar="PATH", help="a trained Neural Assets pipeline folder or hub id")
    p.add_argument("--dinov2", default=None, metavar="PATH", help="DINOv2 folder or hub id (transformers Dinov2Model)")
    p.add_argument("--sd", default=None, metavar="PATH", help="Stable Diffusion 1.5 / 2.1 folder holding vae/ and unet/")
    p.add_argument("--image-size", type=int, default=256, help="render size of an assembled pipeline (SD 2.1 at MOVi: 256)")
    p.add_argument("--save", default=None, metavar="DIR", help="save an assembled pipeline here (to fine-tune it)")
    p.add_argument("--out", default="examples_out", metavar="DIR", help="folder to write the renders to")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    return p.parse_args()


def pipeline(args: argparse.Namespace):
    """The pipeline to render with: --pipeline, or one assembled from --dinov2 and --sd."""
    from neuralassets.models import AutoencoderConfig, ModelConfig, SchedulerConfig
    from neuralassets.pipelines import NeuralAssetsPipeline

    if args.pipeline is not None:
        return NeuralAssetsPipeline.from_pretrained(args.pipeline)
    sd = Path(args.sd)
    if not (sd / "vae").is_dir() or not (sd / "unet").is_dir():
        fail(f"--sd {args.sd}: expected a Stable Diffusion folder with vae/ and unet/ subfolders")
    config = ModelConfig(
        image_size=args.image_size,
        asset_encoder=dict(backbone="dinov2", backbone_path=args.dinov2, token_dim=1024, spatial_channels=0,
                           object_feature_map=False),
        autoencoder=AutoencoderConfig(pretrained=str(sd / "vae")),
        denoiser=dict(kind="unet", pretrained=str(sd / "unet")),
        scheduler=SchedulerConfig(kind="ddim", prediction_type="v_prediction"))
    pipe = NeuralAssetsPipeline.from_config(config)
    print("assembled DINOv2 + Stable Diffusion; its asset-token layers are untrained (fine-tune it before trusting renders)")
    if args.save:
        pipe.save_pretrained(args.save)
        print(f"saved the assembled pipeline to {args.save}")
    return pipe


def main() -> None:
    args = arguments()
    missing = []
    if args.sam_checkpoint is None:
        missing.append("--sam-checkpoint PTH (a segment-anything checkpoint)")
    if args.pipeline is None and (args.dinov2 is None or args.sd is None):
        missing.append("--pipeline PATH, or --dinov2 PATH and --sd PATH (the renderer's pretrained parts)")
    if missing:
        fail("this example needs real pretrained models, none of which ship with the library: give "
             + "; ".join(missing) + ". Run with --help for details.")
    try:
        from neuralassets.perception.sam import SamSegmenter

        segmenter = SamSegmenter.from_checkpoint(args.sam_checkpoint, args.sam_type)
        pipe = pipeline(args)
    except NeuralAssetsError as e:
        fail(str(e))
    scene, _, _ = load_scene(args, pipe.config.max_objects, segmenter)
    largest = max(scene.assets, key=lambda a: int(a.masks[0].sum()))
    moved = edits.move(scene, largest.id, (0.5, 0.0), frame_of_reference="camera", check_visibility="warn")
    print(f"SAM found {len(scene)} objects; moving {largest.name} 0.5 m to the right")
    save_row(Path(args.out) / "real_models.png", [scene.frames[0], render(pipe, scene, args), render(pipe, moved, args)],
             ["frame 0", "rendered", "moved"])

if __name__ == "__main__":
    main()
