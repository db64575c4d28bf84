"""Put the objects of one video in front of the background of another.

    python examples/background_swap.py [--video clip.mp4] [--background other.mp4] [--model PATH] [--out DIR]

The background token comes from the other video's first frame (its objects greyed out)
and carries the motion from that frame's camera to the rendered one.
"""

from pathlib import Path

from common import fail, load_pipeline, load_scene, parser, render, save_row

from neuralassets import edits
from neuralassets.data import generate_scene, split_seed
from neuralassets.errors import NeuralAssetsError


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--background", default=None, metavar="PATH",
                   help="video or image whose first frame becomes the background (default: a synthetic test scene)")
    args = p.parse_args()
    pipe = load_pipeline(args)
    scene, _, _ = load_scene(args, pipe.config.max_objects)
    try:
        if args.background is None:
            other = generate_scene(split_seed("test", 1), frames=[0])
        else:
            from neuralassets.perception import extract
            from neuralassets.video import read_video

            frames, _ = read_video(args.background, max_side=256, max_frames=2)
            other = extract(frames)
    except NeuralAssetsError as e:
        fail(str(e))
    swapped = edits.swap_background(scene, other, 0, other_name="background")
    images = [scene.frames[0], other.frames[0], render(pipe, scene, args), render(pipe, swapped, args)]
    save_row(Path(args.out) / "background_swap.png", images, ["frame 0", "other video", "model", "model, swapped"])


if __name__ == "__main__":
    main()
