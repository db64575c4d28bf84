"""Swap the looks of two objects, and give an object the look of an object from another video.

    python examples/swap_and_transfer.py [--video clip.mp4] [--model PATH] [--out DIR]

Appearance edits change where an asset's appearance tokens come from; each object keeps
its own 3D box, so it is rendered with the other's looks in its own pose.
"""

from pathlib import Path

from common import load_pipeline, load_scene, parser, render, save_row

from neuralassets import edits
from neuralassets.data import generate_scene, split_seed
from neuralassets.demo import extract_sample


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--donor-scene", type=int, default=3, help="test-split scene whose largest object lends its looks")
    args = p.parse_args()
    pipe = load_pipeline(args)
    scene, _, _ = load_scene(args, pipe.config.max_objects)
    if len(scene) < 2:
        raise SystemExit("error: swapping needs two objects")
    first, second = sorted(scene.assets, key=lambda a: -int(a.masks[0].sum()))[:2]
    swapped = edits.swap_appearance(scene, first.id, second.id)

    donor_truth = generate_scene(split_seed("test", args.donor_scene), frames=[0, 6, 12, 18])
    donor, _ = extract_sample(donor_truth)
    lender = max(donor.assets, key=lambda a: int(a.masks[a.source_frame].sum()))
    transferred = edits.transfer(scene, first.id, donor, lender.id, other_name=f"test scene {args.donor_scene}")
    print(f"swapped {first.name} <-> {second.name}; {first.name} takes the looks of {lender.name} "
          f"({donor_truth.asset(lender.attributes['track_id']).name}) from test scene {args.donor_scene}")

    images = [scene.frames[0], render(pipe, scene, args), render(pipe, swapped, args), render(pipe, transferred, args)]
    save_row(Path(args.out) / "swap_and_transfer.png", images, ["frame 0", "model", "swapped", "transferred"])


if __name__ == "__main__":
    main()
