"""The editor's per-user state: the scene being edited, its undo/redo stacks and the selection.

One :class:`EditorState` lives in each browser session (a ``gr.State``). It is treated as
immutable: callbacks return a new state (``dataclasses.replace``) and never change the one
they were given, and Scenes inside it are never edited in place (edits return new ones), so
states may share Scenes safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import Tensor

from ..scene import Scene

#: Most edits that can be undone; older snapshots are dropped so a session's memory stays bounded.
MAX_UNDO = 20


@dataclass(frozen=True)
class RenderSettings:
    """How the "after" image is made.

    Attributes:
        backend: ``"ground truth"`` (the synthetic generator's exact renderer) or ``"neural"``
            (the Neural Assets pipeline).
        steps: denoising steps of the neural back end.
        guidance: classifier-free guidance scale of the neural back end (1 = off).
        seed: seeds the neural back end's initial noise; the same seed gives the same image.
        keep_unchanged: the neural back end samples only what the edit touches and keeps the
            frame's own pixels wherever its render leaves the scene unchanged (the pipeline's
            ``keep_unchanged``); False shows the render alone.
    """

    backend: str = "ground truth"
    steps: int = 3  # the shipped model's own sampling settings (weights/model_index.json)
    guidance: float = 1.0
    seed: int = 0
    keep_unchanged: bool = True


@dataclass(frozen=True, eq=False)  # identity equality: comparing Scenes field by field is meaningless
class EditorState:
    """Everything one editor session remembers.

    Attributes:
        scene: the current, edited scene (None before anything is loaded).
        original: the scene as loaded, shown as the "before" image.
        source_name: what was loaded, e.g. ``"sample 2 (seed 1000002)"`` or an upload's file name.
        undo: earlier scenes, oldest first, at most :data:`MAX_UNDO`.
        redo: scenes undone, the next one to redo last.
        selected: id of the selected asset, or None.
        frame: the frame shown, edited at and rendered.
        drag_from: (u, v) pixel where a two-click floor drag started, or None.
        settings: render settings.
        rendered: (3, H, W) float in [0, 1], the latest render of ``rendered_scene``, or None.
        rendered_scene: the scene ``rendered`` shows (a render is current when it is ``scene``).
        rendered_frame: the frame ``rendered`` shows.
        rendered_backend: the back end that made ``rendered``.
        kept: (H, W) float in [0, 1], how much of each pixel of ``rendered`` the neural back end
            kept from the photo (0: drawn), or None when the render kept nothing.
        preview: (scene, frame, (3, H, W) float image, what it is in words): the re-render the
            scene view shows of an edited scene when there is no current render (exact for a
            synthetic scene, geometric for others), or None.
    """

    scene: Scene | None = None
    original: Scene | None = None
    source_name: str = ""
    undo: tuple[Scene, ...] = ()
    redo: tuple[Scene, ...] = ()
    selected: int | None = None
    frame: int = 0
    drag_from: tuple[float, float] | None = None
    settings: RenderSettings = field(default_factory=RenderSettings)
    rendered: Tensor | None = None
    rendered_scene: Scene | None = None
    rendered_frame: int = 0
    rendered_backend: str = ""
    kept: Tensor | None = None
    preview: tuple[Scene, int, Tensor, str] | None = None

    @property
    def loaded(self) -> bool:
        return self.scene is not None

    @property
    def render_is_current(self) -> bool:
        """Whether ``rendered`` shows the current scene at the current frame."""
        return self.rendered is not None and self.rendered_scene is self.scene and self.rendered_frame == self.frame

    @property
    def preview_is_current(self) -> bool:
        """Whether ``preview`` shows the current scene at the current frame."""
        return self.preview is not None and self.preview[0] is self.scene and self.preview[1] == self.frame

    def with_scene(self, scene: Scene) -> EditorState:
        """A state whose scene is ``scene`` after an edit: the old scene goes on the undo stack, redo is cleared."""
        undo = (*self.undo, self.scene)[-MAX_UNDO:] if self.scene is not None else self.undo
        selected = self.selected if self.selected in scene.asset_ids else None
        return replace(self, scene=scene, undo=undo, redo=(), selected=selected, drag_from=None)

    def loaded_with(self, scene: Scene, name: str) -> EditorState:
        """A fresh session on ``scene`` (history, selection and render cleared; settings kept)."""
        return EditorState(scene=scene, original=scene, source_name=name, settings=self.settings)

    def undone(self) -> EditorState:
        """The state before the last edit (unchanged when there is nothing to undo)."""
        if not self.undo:
            return self
        previous = self.undo[-1]
        selected = self.selected if self.selected in previous.asset_ids else None
        return replace(self, scene=previous, undo=self.undo[:-1], redo=(*self.redo, self.scene), selected=selected,
                       drag_from=None)

    def redone(self) -> EditorState:
        """The state after the last undone edit (unchanged when there is nothing to redo)."""
        if not self.redo:
            return self
        following = self.redo[-1]
        selected = self.selected if self.selected in following.asset_ids else None
        return replace(self, scene=following, undo=(*self.undo, self.scene)[-MAX_UNDO:], redo=self.redo[:-1],
                       selected=selected, drag_from=None)
