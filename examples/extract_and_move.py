"""Extract the objects of a video, move one of them in 3D, and render the edit with the model.

    python examples/extract_and_move.py [--video clip.mp4] [--model PATH] [--out DIR]

Without --video it uses a held-out synthetic video and adds the generator's exact
re-render of the moved scene for comparison.
"""

from pathlib import Path

from common import load_pipeline, load_scene, parser, render, save_row

from neuralassets import edits
from neuralassets.data import render as exact_render


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--right", type=float, default=0.6, help="metres to move the object to the right, as the camera sees it")
    p.add_argument("--away", type=float, default=0.0, help="metres to move it away from the camera")
    args = p.parse_args()
    pipe = load_pipeline(args)
    scene, truth, ids = load_scene(args, pipe.config.max_objects)
    largest = max(scene.assets, key=lambda a: int(a.masks[0].sum()))
    print(f"{len(scene)} objects; moving {largest.name} (id {largest.id}) {args.right} m right and {args.away} m away")

    def move(s, asset_id):
        return edits.move(s, asset_id, (args.right, args.away), frame_of_reference="camera", check_visibility="warn")

    images = [scene.frames[0], render(pipe, scene, args), render(pipe, move(scene, largest.id), args)]
    labels = ["frame 0", "model", "model, moved"]
    if truth is not None:
        generator_id = next(g for g, i in ids.items() if i == largest.id)
        images.append(exact_render(move(truth, generator_id), frames=[0]).rgb[0])
        labels.append("exact, moved")
    save_row(Path(args.out) / "extract_and_move.png", images, labels)


if __name__ == "__main__":
    main()
