"""Data: the exact renderer, the scene generator, training pairs, the Kubric MOVi folder format and the public datasets.

* :func:`generate_scene` samples and renders a multi-object video with exact ground truth
  from one integer seed; :func:`sample_scene_spec` samples it without rendering.
* :func:`render` re-renders any Scene whose assets carry renderer attributes, so an edited
  scene renders its edit exactly; :func:`render_scene` returns the re-rendered Scene with
  masks, 2D boxes, visibility and depth; :func:`render_background` makes a background.
* :data:`SPLITS` holds disjoint train / val / test seed ranges.
* :class:`FramePairDataset` yields the paper's (source, target) training pairs;
  :func:`write_shards` caches them and :class:`ShardedPairDataset` reads the cache.
* The public datasets: :mod:`.movi` reads MOVi-E's TFDS TFRecord files and :mod:`.objectron`
  Objectron's clips as Scenes; :mod:`.datasets` draws training pairs and benchmark cases from them.
"""

from .pairs import FramePairDataset, ShardedPairDataset, collate_pairs, write_shards
from .renderer import RenderOutput, render, render_background, render_scene
from .synthetic import SPLITS, GeneratorConfig, generate_scene, sample_scene_spec, select_frames, split_seed

__all__ = [
    "FramePairDataset", "GeneratorConfig", "RenderOutput", "SPLITS", "ShardedPairDataset", "collate_pairs",
    "generate_scene", "render", "render_background", "render_scene", "sample_scene_spec",
    "select_frames", "split_seed", "write_shards",
]
