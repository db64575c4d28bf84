"""Fine-tune a trained pipeline on fresh synthetic pairs within a time budget.

    python examples/finetune.py [--model PATH] [--out DIR] [--video-pairs N] [--edit-pairs M]
        [--edits TASKS] [--seed-offset K] [--workers W] [--minutes T] [--batch-size B] [--lr LR]
        [--object-loss-weight W] [--render-only]

Renders N video pairs (objects drift and may grow or shrink) and M edit pairs (a frame and
the same frame after a benchmark-style edit) from train seeds K onwards (pick seeds no earlier
stage used: docs/MODEL_CHOICES.md lists them), then trains the model's asset encoder and
denoiser from its weights with a fresh optimiser; the autoencoder stays the model's own. The
learning-rate schedule (warm-up, then cosine) is fitted to the time budget. The EMA weights are
saved as an int8 pipeline folder in DIR/pipeline, each file at most 16 MiB. On a GPU the
training set is held on the device. Rendering and latent caching do not count against
--minutes; the run's log and checkpoints are in DIR/run. Rendering resumes where it stopped, so
--render-only can render the pairs first (on one machine, say) and a later call train on them.
The shipped model's last stage was this script; configs/shipped/10_all_edits_gpu.yaml is the same run as a
config file.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from common import fail

from neuralassets.data import GeneratorConfig, write_shards
from neuralassets.data.pairs import EDIT_PAIR_TASKS
from neuralassets.errors import NeuralAssetsError
from neuralassets.pipelines import NeuralAssetsPipeline
from neuralassets.training import Trainer
from neuralassets.training.config import DataConfig, OptimConfig, TrainConfig

MAX_FILE_BYTES = 16 * 2**20  # the largest weights file written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="weights", metavar="PATH", help="pipeline folder to start from (default: weights)")
    p.add_argument("--out", default="finetune_out", metavar="DIR", help="folder for the pairs, the run and the result")
    p.add_argument("--video-pairs", type=int, default=2048, help="video pairs to render")
    p.add_argument("--edit-pairs", type=int, default=2048, help="edit pairs to render")
    p.add_argument("--edits", default=",".join(EDIT_PAIR_TASKS),
                   help="comma-separated edits the edit pairs cycle through (repeat one to weight it)")
    p.add_argument("--seed-offset", type=int, default=900_000, help="first train seed of the new pairs")
    p.add_argument("--workers", type=int, default=2, help="processes rendering pairs")
    p.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per step")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--object-loss-weight", type=float, default=1.0, help="loss weight inside object boxes")
    p.add_argument("--render-only", action="store_true", help="render the pairs and stop")
    args = p.parse_args()
    out = Path(args.out)
    try:
        model = NeuralAssetsPipeline.from_pretrained(args.model).config
        pairs = [write_shards(out / "video_pairs", "train", args.video_pairs, model.max_objects,
                              GeneratorConfig(image_size=model.image_size, resize_probability=0.5),
                              seed_offset=args.seed_offset, num_workers=args.workers),
                 write_shards(out / "edit_pairs", "train", args.edit_pairs, model.max_objects,
                              GeneratorConfig(image_size=model.image_size), seed_offset=args.seed_offset + args.video_pairs,
                              num_workers=args.workers, edit_tasks=tuple(args.edits.split(",")))]
        if args.render_only:
            print(f"wrote {' and '.join(map(str, pairs))}")
            return
        on_gpu = torch.cuda.is_available()
        config = TrainConfig(
            stage="denoiser", output_dir=str(out / "run"), init_from=args.model,
            max_steps=1_000_000,  # the time limit ends the schedule
            mixed_precision="bf16", log_every=25, checkpoint_every=1_000_000, keep_checkpoints=1, sample_every=0,
            # the model's own autoencoder, loaded from its folder: it made the latents the denoiser knows
            model=replace(model, autoencoder=replace(model.autoencoder, pretrained=str(Path(args.model) / "vae"),
                                                     model_config=None)),
            data=DataConfig(source="shards", shard_folder=[str(f) for f in pairs], resident=on_gpu,
                            num_workers=args.workers),
            optim=OptimConfig(batch_size=args.batch_size, lr=args.lr, warmup_steps=100,
                              object_loss_weight=args.object_loss_weight))
        trainer = Trainer(config)
        losses = trainer.train(time_limit=args.minutes * 60)
        trainer.pipeline().save_pretrained(out / "pipeline", dtype=torch.int8, max_shard_bytes=MAX_FILE_BYTES)
    except NeuralAssetsError as e:
        fail(str(e))
    first, last = (sum(part) / len(part) for part in (losses[:25], losses[-25:]))
    summary = {"steps": trainer.step, "loss_first_25": first, "loss_last_25": last, "pairs": len(trainer.train_set)}
    print(json.dumps(summary))
    print(f"wrote {out / 'pipeline'}")


if __name__ == "__main__":
    main()
