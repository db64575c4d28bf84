"""``neuralassets edit``: edit a saved Scene folder and write the edited Scene (and optionally a render).

Edits run in command-line order. Angles are in degrees here (the Python API takes
radians); distances are metres in world axes (z up).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import warnings
from pathlib import Path

_OPS = ("move", "rotate", "scale", "remove", "swap", "background", "edits")


class _Op(argparse.Action):
    """Collect edit flags into ``namespace.ops`` as (flag, value), keeping their order."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.ops = [*(getattr(namespace, "ops", None) or []), (self.dest, values)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edit", help="edit a saved Scene (move, rotate, scale, remove, swap, background) and write the result",
        description="Edit a saved Scene folder and write the edited Scene to OUT_DIR, with its edit history in "
                    "OUT_DIR/edits.json. Edits run in command-line order; angles are in degrees, distances in metres "
                    "(world axes, z up).")
    p.add_argument("scene", metavar="SCENE_DIR", help="Scene folder written by Scene.save")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder to write the edited Scene to")
    g = p.add_argument_group("edits (repeatable, applied in the order given)")
    g.add_argument("--move", action=_Op, metavar="ID:DX,DY,DZ", help="translate asset ID by DX,DY,DZ metres")
    g.add_argument("--rotate", action=_Op, metavar="ID:YAW[,PITCH,ROLL]",
                   help="turn asset ID about its centre, degrees (yaw turns about the world up axis)")
    g.add_argument("--scale", action=_Op, metavar="ID:F[,FY,FZ]",
                   help="scale asset ID's box by F (or per box axis), keeping its base on the floor")
    g.add_argument("--remove", action=_Op, metavar="ID", help="remove asset ID")
    g.add_argument("--swap", action=_Op, metavar="A:B", help="assets A and B trade appearance, keeping their poses")
    g.add_argument("--background", action=_Op, metavar="OTHER_SCENE_DIR", help="use frame 0 of another Scene as the background")
    g.add_argument("--edits", action=_Op, metavar="EDITS_JSON",
                   help="replay an edit list (neuralassets.edits.save_edits, or another edit's edits.json)")
    p.add_argument("--frames", default=None, metavar="0,3-5", help="frames that --move/--rotate/--scale change (default: all)")
    p.add_argument("--other", action="append", default=[], metavar="NAME=DIR",
                   help="a Scene folder that --edits refers to by NAME (names that are Scene folders load by themselves)")
    p.add_argument("--allow-offscreen", action="store_true",
                   help="warn instead of failing when an edit moves an object out of view or behind the camera")
    r = p.add_argument_group("rendering the edited target frame")
    r.add_argument("--target-frame", type=int, default=-1, help="frame to render (default: the last)")
    r.add_argument("--render", action="store_true", help="render it with the model to OUT_DIR/render.png")
    r.add_argument("--weights", default=None, metavar="DIR", help="pipeline folder for --render (default: the shipped weights/)")
    r.add_argument("--steps", type=int, default=None, help="denoising steps for --render (default: the model's)")
    r.add_argument("--guidance", type=float, default=None, help="guidance scale for --render (default: the model's)")
    r.add_argument("--seed", type=int, default=0, help="noise seed for --render")
    r.add_argument("--raw", action="store_true",
                   help="--render the model's image alone, without keeping the source's unchanged pixels")
    r.add_argument("--ground-truth", action="store_true",
                   help="render it with the synthetic renderer to OUT_DIR/ground_truth.png (scenes made by the generator)")
    p.set_defaults(run=_run, ops=[])


# --------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------

def parse_frames(text: str | None) -> list[int] | None:
    """``"0,3-5"`` -> ``[0, 3, 4, 5]``; None stays None (every frame)."""
    from ..errors import ValidationError

    if text is None:
        return None
    frames: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValidationError(f"--frames {text!r}: expected indices and ranges like 0,3-5")
        lo = int(m.group(1))
        frames += list(range(lo, int(m.group(2)) + 1)) if m.group(2) is not None else [lo]
    return frames


def _id_and_numbers(flag: str, text: str, counts: tuple[int, ...], metavar: str) -> tuple[int, list[float]]:
    """``"ID:a,b,c"`` -> (ID, [a, b, c]) with a count in ``counts``."""
    from ..errors import ValidationError

    head, sep, tail = text.partition(":")
    try:
        asset_id, numbers = int(head), [float(x) for x in tail.split(",")]
    except ValueError:
        asset_id, numbers = None, []
    if not sep or asset_id is None or len(numbers) not in counts:
        raise ValidationError(f"--{flag} {text!r}: expected {metavar}")
    return asset_id, numbers


def _asset_id(flag: str, text: str) -> int:
    from ..errors import ValidationError

    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"--{flag} {text!r}: expected an integer asset id") from None


def _other_scenes(pairs: list[str], edits) -> dict:
    """Scenes named by ``--other NAME=DIR``, plus recorded names that are Scene folders themselves."""
    from ..errors import ValidationError
    from ..scene import Scene

    others = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name:
            raise ValidationError(f"--other {pair!r}: expected NAME=DIR")
        others[name] = Scene.load(folder)
    for e in edits:
        name = e.args.get("other_scene")
        if isinstance(name, str) and name not in others and (Path(name) / "scene.json").is_file():
            others[name] = Scene.load(name)
    return others


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------

def apply_flags(scene, ops: list[tuple[str, str]], frames: list[int] | None, check_visibility: str, others: list[str]):
    """Apply the command line's edit flags, in order, to ``scene``; returns the edited Scene."""
    from .. import edits as E
    from ..errors import ValidationError
    from ..scene import Scene

    for flag, value in ops:
        if flag == "move":
            asset_id, delta = _id_and_numbers(flag, value, (3,), "ID:DX,DY,DZ")
            scene = E.move(scene, asset_id, delta, frames=frames, check_visibility=check_visibility)
        elif flag == "rotate":
            asset_id, angles = _id_and_numbers(flag, value, (1, 3), "ID:YAW or ID:YAW,PITCH,ROLL (degrees)")
            yaw, pitch, roll = (math.radians(a) for a in angles + [0.0] * (3 - len(angles)))
            scene = E.rotate(scene, asset_id, yaw, pitch, roll, frames=frames, check_visibility=check_visibility)
        elif flag == "scale":
            asset_id, factors = _id_and_numbers(flag, value, (1, 3), "ID:F or ID:FX,FY,FZ")
            scene = E.scale(scene, asset_id, factors, frames=frames, check_visibility=check_visibility)
        elif flag == "remove":
            scene = E.remove(scene, _asset_id(flag, value))
        elif flag == "swap":
            m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", value)
            if not m:
                raise ValidationError(f"--swap {value!r}: expected A:B (two asset ids)")
            scene = E.swap_appearance(scene, int(m.group(1)), int(m.group(2)))
        elif flag == "background":
            scene = E.swap_background(scene, Scene.load(value), 0, other_name=value)
        elif flag == "edits":
            loaded = E.load_edits(value)
            scene = E.apply_edits(scene, loaded, others=_other_scenes(others, loaded))
    return scene


def _run(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from .. import edits as E
    from ..errors import ValidationError, WeightsError
    from ..scene import Scene
    from ..video import to_uint8_frames

    if not args.ops:
        raise ValidationError(f"no edit given; use one or more of {', '.join('--' + o for o in _OPS)}")
    scene = Scene.load(args.scene)
    if not -scene.num_frames <= args.target_frame < scene.num_frames:
        raise ValidationError(f"--target-frame {args.target_frame}: not a frame index of a {scene.num_frames}-frame scene")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", E.EditWarning)
        edited = apply_flags(scene, args.ops, parse_frames(args.frames), "warn" if args.allow_offscreen else "error", args.other)
    for w in caught:
        print(f"neuralassets edit: warning: {w.message}", file=sys.stderr)
    out = edited.save(args.out)
    E.save_edits(out / "edits.json", edited)
    added = E.history(edited)[len(E.history(scene)):]
    print(f"{out}: {len(added)} edit(s) ({', '.join(e.op for e in added)}); {len(edited)} assets")

    target = args.target_frame % edited.num_frames
    if args.ground_truth:
        from ..data import render

        rgb = render(edited, frames=[target]).rgb
        Image.fromarray(to_uint8_frames(rgb)[0]).save(out / "ground_truth.png")
        print(f"{out / 'ground_truth.png'}: frame {target} rendered by the synthetic renderer")
    if args.render:
        from ..pipelines import NeuralAssetsPipeline

        try:
            pipe = NeuralAssetsPipeline.from_pretrained(args.weights)
        except WeightsError as e:
            raise WeightsError(f"--render: cannot load the model ({e}); the edited scene is saved in {out}") from None
        image = pipe(edited, target_frame=target, num_inference_steps=args.steps, guidance_scale=args.guidance,
                     generator=torch.Generator().manual_seed(args.seed), output_type="np",
                     keep_unchanged=not args.raw).images[0]
        Image.fromarray(image).save(out / "render.png")
        print(f"{out / 'render.png'}: frame {target} rendered by the model")
    return 0
