"""``neuralassets scene``: inspect saved Scenes (folders or zips)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scene", help="inspect a saved Scene (folder or zip)", description="Inspect a saved Scene.")
    s = p.add_subparsers(dest="scene_command", metavar="ACTION", required=True)
    info = s.add_parser("info", help="validate a Scene and print its frames, cameras and assets")
    info.add_argument("folder", metavar="SCENE", help="a Scene folder written by Scene.save, or a Scene zip (Scene.save_zip)")
    info.set_defaults(run=_info)


def _info(args: argparse.Namespace) -> int:
    from ..scene import Scene

    scene = Scene.load(args.folder)
    print(f"{args.folder}: {scene.num_frames} frames of {scene.width}x{scene.height}, {len(scene)} assets")
    for a in scene.assets:
        seen = int((a.visibility > 0).sum())
        c = a.centers[a.source_frame].tolist()
        print(f"  id {a.id:3d}  {a.name:<24s} {a.category:<10s} source frame {a.source_frame:3d}  "
              f"seen in {seen}/{scene.num_frames} frames  centre ({c[0]:.2f}, {c[1]:.2f}, {c[2]:.2f}) m")
    if scene.background is not None:
        print("  explicit background:", scene.background.attributes or "image")
    return 0
