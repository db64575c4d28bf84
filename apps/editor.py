"""Run the editor from a source checkout: ``python apps/editor.py [--host H] [--port P] [--share]``.

The same as ``neuralassets editor``; the layout is :func:`neuralassets.editor.app.build_app`.
"""

import sys

from neuralassets.cli import main

if __name__ == "__main__":
    sys.exit(main(["editor", *sys.argv[1:]]))
