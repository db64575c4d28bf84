"""Animate an object along keyframes and render the video with one fixed noise.

    python examples/animate.py [--video clip.mp4] [--model PATH] [--out DIR] [--frames 12]

The largest object slides across the view while turning a quarter turn, and the camera
swings a little; `neuralassets.animation.animate` makes the animated scene and
`NeuralAssetsPipeline.render_video` renders it (MP4 or GIF). Without --video the
generator's exact video of the same animation is written next to it.
"""

import math
from pathlib import Path

import torch
from common import load_pipeline, load_scene, parser

from neuralassets.animation import CameraKeyframe, Keyframe, Keyframes, animate
from neuralassets.data import render as exact_render
from neuralassets.demo import labelled_row
from neuralassets.video import write_video


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=12, help="frames of the video")
    args = p.parse_args()
    pipe = load_pipeline(args)
    scene, truth, ids = load_scene(args, pipe.config.max_objects)
    largest = max(scene.assets, key=lambda a: int(a.masks[0].sum()))
    cam = scene.cameras[0]
    right = cam.R[0] * torch.tensor([1.0, 1.0, 0.0])
    right = (0.8 * right / right.norm()).tolist()
    eye, target = cam.center, cam.center + 5.0 * cam.R[2]  # a point 5 m ahead along the optical axis
    swing = eye + 0.5 * cam.R[0]
    keys = Keyframes(
        assets={largest.id: {0: Keyframe(), args.frames - 1: Keyframe(offset=tuple(right), yaw=math.pi / 2)}},
        camera={0: CameraKeyframe(tuple(eye.tolist()), tuple(target.tolist())),
                args.frames - 1: CameraKeyframe(tuple(swing.tolist()), tuple(target.tolist()))},
        interpolation="smooth")
    video = pipe.render_video(animate(scene, keys, args.frames), num_inference_steps=args.steps, seed=args.seed)
    out = Path(args.out)
    print(f"wrote {write_video(out / 'animate.mp4', video, fps=8)}")
    if truth is not None:
        generator_id = next(g for g, i in ids.items() if i == largest.id)
        truth_keys = Keyframes({generator_id: keys.assets[largest.id]}, keys.camera, keys.interpolation)
        exact = exact_render(animate(truth, truth_keys, args.frames)).rgb
        video = torch.stack([labelled_row([e, m], ["exact", "model"]) for e, m in zip(exact, video)])
    print(f"wrote {write_video(out / 'animate.gif', video, fps=8)}")


if __name__ == "__main__":
    main()
