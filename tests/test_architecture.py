"""The import rule of docs/ARCHITECTURE.md: no module imports a folder above its own, nor a sibling folder."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "neuralassets"

#: Layers from the bottom: a module may import its own group and any layer below its own, never above or beside.
#: The package's top-level modules are the core (the Scene and what every folder shares), except the applications.
LAYERS = (
    {"core"},
    {"perception", "data", "models"},
    {"pipelines"},
    {"training", "benchmark", "editor"},
    {"apps"},
)
APPLICATIONS = {"cli", "demo", "commands"}  # the command line and the demo: the top layer, one group


def folder_of(module: str, package: Path = PACKAGE) -> str:
    """``neuralassets.data.pairs`` -> ``data``; a top-level module -> ``core``, or ``apps`` for the applications."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # neuralassets itself (__init__)
    if parts[1] in APPLICATIONS:
        return "apps"
    return parts[1] if (package / parts[1]).is_dir() else "core"


def layer(folder: str) -> int:
    return next(i for i, folders in enumerate(LAYERS) if folder in folders)


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) of every ``neuralassets`` import in a file, lazy ones inside functions included."""
    module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
    parent = module.split(".")[:-1]  # the package a relative import starts from (an __init__'s own)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = parent[: len(parent) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            found += [(node.lineno, name) for name in names if name.startswith("neuralassets")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("neuralassets")]
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    """One line per import that breaks the rule: file:line (its group) imports module (that group)."""
    out = []
    root = package.parent
    for path in sorted(package.rglob("*.py")):
        own = folder_of(".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"), package)
        for line, target in imports(path, package):
            location = root / target.replace(".", "/")
            module = target if location.with_suffix(".py").is_file() or location.is_dir() else target.rsplit(".", 1)[0]
            other = folder_of(module, package)
            if other != own and layer(other) >= layer(own):
                out.append(f"{path.relative_to(root)}:{line} ({own}) imports {target} ({other})")
    return out


def test_no_module_imports_upward_or_sideways():
    assert violations() == []


def test_the_rule_sees_every_kind_of_import():
    # the checker itself: relative, absolute and lazy imports are all found and placed in their folder
    found = {name for _, name in imports(PACKAGE / "data" / "pairs.py")}
    assert {"neuralassets.data.edit_cases", "neuralassets.conditioning"} <= found  # relative, one and two levels up
    lazy = {name for _, name in imports(PACKAGE / "commands" / "bench.py")}  # imported inside run()
    assert "neuralassets.benchmark.baselines" in lazy and "neuralassets.pipelines" in lazy
    assert ("neuralassets.geometry" in {name for _, name in imports(PACKAGE / "scene.py")})  # from . import geometry
    assert folder_of("neuralassets.pipelines.reprojection") == "pipelines" and folder_of("neuralassets.scene") == "core"
    assert folder_of("neuralassets.demo") == folder_of("neuralassets.commands.bench") == "apps"
    assert folder_of("neuralassets") == "core" and layer("data") < layer("pipelines") < layer("benchmark") < layer("apps")


def test_upward_sideways_and_core_to_folder_imports_are_caught(tmp_path):
    package = tmp_path / "neuralassets"
    files = {"__init__.py": "", "scene.py": "from .pipelines import render\n",
             "data/__init__.py": "", "data/pairs.py": "def f():\n    from ..models import build\n",
             "models/__init__.py": "", "models/build.py": "from neuralassets.data import pairs\n",
             "pipelines/__init__.py": "from ..models.build import x\nfrom .. import scene\n",
             "benchmark/__init__.py": "from ..pipelines import y\n"}
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert violations(package) == [
        "neuralassets/data/pairs.py:2 (data) imports neuralassets.models (models)",  # sideways, lazily
        "neuralassets/models/build.py:1 (models) imports neuralassets.data (data)",  # sideways
        "neuralassets/scene.py:1 (core) imports neuralassets.pipelines (pipelines)"]  # the core imports a folder
