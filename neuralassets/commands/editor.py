"""``neuralassets editor``: serve the interactive Gradio editor."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("editor", help="serve the interactive editor in the browser",
                       description="Serve the interactive editor: load a sample, a video, two images or a Scene zip; "
                                   "select objects, move/rotate/scale/remove/swap them, render and export.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: the first free one from 7860)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio link (off by default)")
    p.add_argument("--weights", default=None, help="pipeline folder or hub id for the neural back end (default: weights/)")
    p.add_argument("--device", default="cpu", help="torch device of the neural back end (default cpu)")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ..editor.app import launch

    # Served without blocking, so the lines below (naming this command's flags) come once it is up.
    app = launch(host=args.host, port=args.port, share=args.share, weights=args.weights, device=args.device, block=False)
    print(f"neuralassets editor: serving on {app.local_url}")
    if app.share_url:
        print(f"neuralassets editor: public link {app.share_url}")
    elif args.host in ("127.0.0.1", "localhost"):
        print("neuralassets editor: reachable from this machine only; pass --share for a public link")
    print("neuralassets editor: press Ctrl+C to stop", flush=True)
    app.block_thread()
    return 0
