"""The interactive editor: load a scene, select and edit objects, render, export.

* :mod:`~neuralassets.editor.state` — the per-session :class:`EditorState` (scene, undo/redo, selection).
* :mod:`~neuralassets.editor.callbacks` — every user action as a pure function of (state, inputs).
* :mod:`~neuralassets.editor.views` — what the page shows of a state.
* :mod:`~neuralassets.editor.backends` — the neural and ground-truth renderers, one per process.
* :mod:`~neuralassets.editor.inputs` — samples, uploads and their limits.
* :mod:`~neuralassets.editor.app` — the Gradio layout (``build_app``) and server (``launch``).

Run it with ``neuralassets editor``.
"""

import os

# Set before anything imports gradio: the editor sends no usage reports anywhere.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from .state import MAX_UNDO, EditorState, RenderSettings  # noqa: E402

__all__ = ["MAX_UNDO", "EditorState", "RenderSettings"]
