"""``neuralassets train``: train the autoencoder or the denoiser from a config file.

Several GPUs: ``accelerate launch --multi_gpu --num_processes N -m neuralassets.cli train --config FILE``;
several CPU processes (gloo): the same with ``ACCELERATE_USE_CPU=1`` in the environment.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the autoencoder or the denoiser from a config file",
                       description="Train one stage (autoencoder, then denoiser, then optionally decoder) from a YAML/JSON config. "
                                   "A run continues from the newest checkpoint in its checkpoint folder.")
    p.add_argument("--config", required=True, help="YAML or JSON training config (see configs/shipped/)")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                   help="resume from CHECKPOINT, or from the newest checkpoint when no file is given (an error if none)")
    p.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    p.add_argument("--output-dir", default=None, help="override output_dir")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after STEP (checkpointed and exported) on the schedule of max_steps; "
                        "--resume continues the same run")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="finish the training steps within SECONDS (setup not counted): a run that would overrun "
                        "ends its learning-rate schedule early, at the last step that fits")
    p.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import WeightsError
    from ..training import Trainer, load_config
    from ..training.checkpoint import list_checkpoints

    config = load_config(args.config, max_steps=args.max_steps, output_dir=args.output_dir)
    resume = None
    if args.resume == "latest":
        existing = list_checkpoints(config.checkpoints)
        if not existing:
            raise WeightsError(f"--resume: no checkpoint in {config.checkpoints}")
        resume = existing[-1]
    elif args.resume is not None:
        resume = Path(args.resume)
    trainer = Trainer(config, resume_from=resume)
    if trainer.accelerator.is_main_process:
        stop = "" if args.stop_at is None else f", stopping at step {args.stop_at}"
        stop += "" if args.time_limit is None else f", within {args.time_limit:g} s"
        print(f"{config.stage}: step {trainer.step} of {config.max_steps}{stop}, logging to {trainer.log_path}")
    trainer.train(stop_at=args.stop_at, time_limit=args.time_limit)
    if trainer.config.max_steps != config.max_steps and trainer.accelerator.is_main_process:
        print(f"{config.stage}: the time limit ended the schedule at step {trainer.config.max_steps} "
              f"(resume with --max-steps {trainer.config.max_steps})")
    return 0
