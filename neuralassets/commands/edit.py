"""``neuralassets edit``: edit a saved Scene (folder or zip) and write the edited Scene (and optionally a render).

Edits run in command-line order. Angles are in degrees here (the Python API takes
radians); distances are metres in world axes (z up). The output folder holds only what
this command writes (:data:`OUTPUTS`): a rerun replaces all of it, and the input scene is
never written over unless ``--overwrite`` says so.
"""

from __future__ import annotations

import argparse
import inspect
import math
import re
import shutil
import sys
import warnings
from pathlib import Path

_OPS = ("move", "rotate", "scale", "remove", "swap", "background", "edits")
#: Every file and folder ``neuralassets edit`` writes into ``--out``: the Scene format's, the edit list and the renders.
OUTPUTS = ("scene.json", "tensors.safetensors", "frames", "masks", "appearance", "background.png", "edits.json",
           "render.png", "ground_truth.png")
_SCENE_HELP = "a Scene folder written by Scene.save, or a Scene zip (Scene.save_zip, e.g. the demo's demo_scene.zip)"


class _Op(argparse.Action):
    """Collect edit flags into ``namespace.ops`` as (flag, value), keeping their order."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.ops = [*(getattr(namespace, "ops", None) or []), (self.dest, values)]


#: What ``--render`` can draw with (see ``--backend``'s help).
RENDER_BACKENDS = ("neural", "geometric", "exact")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edit", help="edit a saved Scene (move, rotate, scale, remove, swap, background) and write the result",
        description="Edit a saved Scene (folder or zip) and write the edited Scene to OUT_DIR, with its edit history "
                    "in OUT_DIR/edits.json. Edits run in command-line order; angles are in degrees, distances in metres "
                    "(world axes, z up). A rerun into the same OUT_DIR replaces everything the previous run wrote there.")
    p.add_argument("scene", metavar="SCENE", help=_SCENE_HELP)
    p.add_argument("--out", required=True, metavar="OUT_DIR",
                   help="folder to write the edited Scene to: new, empty, or written by an earlier edit (its outputs are "
                        "replaced); never the input scene's folder, inside it or around it, unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="allow OUT_DIR to be the input scene's folder (replacing that scene), to contain or lie inside an "
                        "input scene, or to hold other files (kept, except those named like this command's outputs)")
    g = p.add_argument_group("edits (repeatable, applied in the order given)")
    g.add_argument("--move", action=_Op, metavar="ID:DX,DY,DZ", help="translate asset ID by DX,DY,DZ metres")
    g.add_argument("--rotate", action=_Op, metavar="ID:YAW[,PITCH,ROLL]",
                   help="turn asset ID about its centre, degrees (yaw turns about the world up axis)")
    g.add_argument("--scale", action=_Op, metavar="ID:F[,FY,FZ]",
                   help="scale asset ID's box by F (or per box axis), keeping its base on the floor")
    g.add_argument("--remove", action=_Op, metavar="ID", help="remove asset ID")
    g.add_argument("--swap", action=_Op, metavar="A:B", help="assets A and B trade appearance, keeping their poses")
    g.add_argument("--background", action=_Op, metavar="OTHER_SCENE",
                   help="use frame 0 of another Scene (folder or zip) as the background")
    g.add_argument("--edits", action=_Op, metavar="EDITS_JSON",
                   help="replay an edit list (neuralassets.edits.save_edits, or another edit's edits.json)")
    p.add_argument("--frames", default=None, metavar="0,3-5", help="frames that --move/--rotate/--scale change (default: all)")
    p.add_argument("--other", action="append", default=[], metavar="NAME=SCENE",
                   help="a Scene (folder or zip) that --edits refers to by NAME (names that are Scenes load by themselves)")
    p.add_argument("--allow-offscreen", action="store_true",
                   help="warn instead of failing when an edit (also a replayed one) moves an object out of view or behind "
                        "the camera")
    r = p.add_argument_group("rendering one frame of the edited scene")
    r.add_argument("--render-frame", "--target-frame", dest="render_frame", type=int, default=None, metavar="N",
                   help="frame to render (negative counts from the end; default: the first frame --frames edits, else the "
                        "first object's source frame); its own photo gives the background and the objects' appearance")
    r.add_argument("--render", action="store_true", help="render it to OUT_DIR/render.png with --backend")
    r.add_argument("--backend", choices=RENDER_BACKENDS, default="neural",
                   help="what --render draws with: neural (the model, default), geometric (the photo's own pixels moved "
                        "by depth and 3D boxes, holes inpainted; no model, at the scene's full size: for footage the model "
                        "was not trained on) or exact (the synthetic generator's renderer; generated scenes only)")
    r.add_argument("--weights", default=None, metavar="DIR", help="pipeline folder for --render (default: the shipped weights/)")
    r.add_argument("--steps", type=int, default=None, help="denoising steps for --render (default: the model's)")
    r.add_argument("--guidance", type=float, default=None, help="guidance scale for --render (default: the model's)")
    r.add_argument("--seed", type=int, default=0, help="noise seed for --render")
    r.add_argument("--raw", action="store_true",
                   help="--render the model's image alone, without keeping the source's unchanged pixels")
    r.add_argument("--ground-truth", action="store_true",
                   help="render it with the synthetic renderer to OUT_DIR/ground_truth.png; scenes not made by the generator "
                        "have none (a warning says so and the rest goes ahead)")
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
    """Scenes named by ``--other NAME=SCENE``, plus recorded names that are Scene folders or zips themselves."""
    import zipfile

    from ..errors import ValidationError
    from ..scene import Scene

    others = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name:
            raise ValidationError(f"--other {pair!r}: expected NAME=SCENE")
        others[name] = Scene.load(folder)
    for e in edits:
        name = e.args.get("other_scene")
        if isinstance(name, str) and name not in others and (
                (Path(name) / "scene.json").is_file() or (Path(name).is_file() and zipfile.is_zipfile(name))):
            others[name] = Scene.load(name)
    return others


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------

def apply_flags(scene, ops: list[tuple[str, str]], frames: list[int] | None, check_visibility: str, others: list[str]):
    """Apply the command line's edit flags, in order, to ``scene``; returns the edited Scene.

    ``check_visibility`` applies to replayed edits (``--edits``) too.
    """
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
            loaded = [_with_check(e, check_visibility) for e in E.load_edits(value)]
            scene = E.apply_edits(scene, loaded, others=_other_scenes(others, loaded))
    return scene


def _with_check(edit, check_visibility: str):
    """``edit`` with ``check_visibility`` set when its op takes one."""
    from .. import edits as E

    if "check_visibility" not in inspect.signature(E.OPS[edit.op]).parameters:
        return edit
    return E.Edit(edit.op, {**edit.args, "check_visibility": check_visibility})


def render_frame(scene, requested: int | None, frames: list[int] | None) -> tuple[int, str]:
    """The frame of ``scene`` (the input) to render and why: ``--render-frame``, else the first frame
    ``--frames`` edits, else the source frame (whose photo gives the background and the first object's looks)."""
    from ..errors import ValidationError

    T = scene.num_frames
    if requested is not None:
        if not -T <= requested < T:
            raise ValidationError(f"--render-frame {requested}: not a frame index of a {T}-frame scene")
        return requested % T, "chosen with --render-frame"
    if frames is not None:
        return min(f % T for f in frames), "the first frame --frames edits"
    seen = [a for a in scene.assets if a.appearance is None and 0 <= a.source_frame < T and a.visibility[a.source_frame] > 0]
    return (seen[0].source_frame, "the source frame") if seen else (0, "the first frame")


def check_out_folder(out: Path, inputs: list[str], overwrite: bool) -> None:
    """Refuse ``--out`` where writing would destroy an input or other files, before anything is read or written.

    Raises:
        ValidationError: ``out`` is, contains or lies inside an input scene, or is not a folder, or
            holds entries other than :data:`OUTPUTS` (the last two unless ``overwrite``).
    """
    from ..errors import ValidationError

    if out.exists() and not out.is_dir():
        raise ValidationError(f"--out {out}: exists and is not a folder")
    where = out.resolve()
    for given in inputs:
        scene = Path(given).resolve()
        relation = ("is the input scene" if where == scene else "lies inside the input scene" if where.is_relative_to(scene)
                    else "contains the input scene" if scene.is_relative_to(where) else None)
        if relation and not overwrite:
            raise ValidationError(f"--out {out}: {relation} {given}; write the edit to another folder, or pass "
                                  "--overwrite to write there anyway")
    if out.is_dir() and not overwrite:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
        if foreign:
            listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ValidationError(f"--out {out}: holds files this command did not write ({listed}); choose a new or "
                                  "empty folder, or pass --overwrite to write there (keeping them)")


def clear_outputs(out: Path) -> None:
    """Remove what an earlier run wrote into ``out`` (:data:`OUTPUTS`); ``scene.json`` first, so an interrupted
    clear never leaves a folder that loads as a mix of two scenes."""
    for name in OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _run(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from .. import edits as E
    from ..errors import ValidationError, WeightsError
    from ..scene import Scene
    from ..video import to_uint8_frames

    if not args.ops:
        raise ValidationError(f"no edit given; use one or more of {', '.join('--' + o for o in _OPS)}")
    out = Path(args.out)
    scenes_read = [args.scene, *(v for f, v in args.ops if f == "background"), *(o.partition("=")[2] for o in args.other)]
    check_out_folder(out, scenes_read, args.overwrite)
    scene = Scene.load(args.scene)
    frames = parse_frames(args.frames)
    target, why = render_frame(scene, args.render_frame, frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", E.EditWarning)
        try:
            edited = apply_flags(scene, args.ops, frames, "warn" if args.allow_offscreen else "error", args.other)
        except E.OutOfViewError as e:
            raise ValidationError(f"{e.problem}; pass --allow-offscreen to allow it") from None
    for w in caught:
        _warn(w.message)
    if args.render and args.backend == "exact":
        exact_render_of(edited, target, "--backend exact")  # refused before anything is written
    truth = None
    if args.ground_truth:
        from ..data import render

        try:
            truth = render(edited, frames=[target]).rgb
        except ValidationError as e:
            _warn(f"--ground-truth: this scene has no exact re-render, so ground_truth.png is not written ({e})")

    out.mkdir(parents=True, exist_ok=True)
    clear_outputs(out)
    edited.save(out, like=(args.scene, scene))  # the frames and untouched masks are copied, not encoded again
    E.save_edits(out / "edits.json", edited)
    added = E.history(edited)[len(E.history(scene)):]
    print(f"{out}: {len(added)} edit(s) ({', '.join(e.op for e in added)}); {len(edited)} assets")
    if truth is not None:
        Image.fromarray(to_uint8_frames(truth)[0]).save(out / "ground_truth.png")
        print(f"{out / 'ground_truth.png'}: frame {target} ({why}) rendered by the synthetic renderer")
    if args.render:
        if args.backend == "neural":
            from ..perception import SlotWarning
            from ..pipelines import NeuralAssetsPipeline

            try:
                pipe = NeuralAssetsPipeline.from_pretrained(args.weights)
            except WeightsError as e:
                raise WeightsError(f"--render: cannot load the model ({e}); the edited scene is saved in {out}") from None
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", SlotWarning)
                # the rendered frame's own photo is the background and appearance, as the editor and the geometric back
                # end take it: another frame's photo seen from this frame's camera would show little of it
                image = pipe(edited, target_frame=target, source_frame=target, num_inference_steps=args.steps,
                             guidance_scale=args.guidance, generator=torch.Generator().manual_seed(args.seed),
                             keep_unchanged=not args.raw).images[0]
            for w in said:
                _warn(w.message)
            by = "the model"
        elif args.backend == "geometric":
            from ..pipelines import GeometricRenderer

            image, by = GeometricRenderer()(edited, target, source_frame=target), "the geometric renderer"
        else:
            image, by = exact_render_of(edited, target, "--backend exact"), "the synthetic renderer"
        Image.fromarray(to_uint8_frames(image[None])[0]).save(out / "render.png")
        print(f"{out / 'render.png'}: frame {target} ({why}), {edited.width}x{edited.height}, rendered by {by}")
    return 0


def exact_render_of(scene, frame: int, flag: str):
    """(3, H, W) the synthetic renderer's image of ``scene`` at ``frame``; a ValidationError naming ``flag`` for other scenes."""
    from ..data import render
    from ..errors import ValidationError

    try:
        return render(scene, frames=[frame]).rgb[0]
    except ValidationError as e:
        raise ValidationError(f"{flag}: this scene was not made by the synthetic generator, so it has no exact re-render "
                              f"({e}); use --backend geometric or neural") from None


def _warn(message) -> None:
    print(f"neuralassets edit: warning: {message}", file=sys.stderr)
