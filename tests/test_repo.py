"""The repository itself: the README's Quickstart is what CI runs, and no shipped code deserialises unsafely."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart(n: int) -> str:
    out = subprocess.run(["bash", "-c", f"awk '/^## Quickstart/{{q=1}} q&&/^```bash/{{b=1;next}} "
                          f"b&&/^```/{{exit}} b&&/^\\$ /{{print substr($0,3)}}' README.md | sed -n '{n}p'"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_quickstart_has_two_commands_and_ci_runs_both():
    install, test = quickstart(1), quickstart(2)
    assert install.startswith("pip install") and "neuralassets" in install
    assert test.startswith("pytest")
    assert quickstart(3) == ""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_command.sh 1" in ci and "readme_command.sh 2" in ci


#: Code that can run whatever a file holds: unpickling (pickle, dill, joblib, numpy with allow_pickle,
#: pandas), torch.load without weights_only=True, and YAML's unsafe loaders.
UNSAFE_LOAD = re.compile(r"\bpickle\.loads?\(|\bdill\.|\bjoblib\.load\(|allow_pickle\s*=\s*True|read_pickle\(|"
                         r"\byaml\.(unsafe_)?load\((?!.*Loader=yaml\.SafeLoader)|\bUnsafeLoader\b")
SHIPPED_CODE = ("neuralassets", "apps", "benchmarks", "examples")


def unsafe_loads(text: str) -> list[int]:
    """Line numbers of ``text`` that deserialise unsafely."""
    return [i for i, line in enumerate(text.splitlines(), 1)
            if UNSAFE_LOAD.search(line) or (re.search(r"torch\.load\(", line) and "weights_only=True" not in line)]


def test_unsafe_load_scan_flags_each_kind():
    bad = ["pickle.load(f)", "x = pickle.loads(b)", "dill.load(f)", "joblib.load(p)", "np.load(p, allow_pickle=True)",
           "pd.read_pickle(p)", "torch.load(p)", "torch.load(p, weights_only=False)", "yaml.load(text)",
           "yaml.unsafe_load(text)", "yaml.load(text, Loader=yaml.UnsafeLoader)"]
    good = ["torch.load(p, map_location='cpu', weights_only=True)", "yaml.safe_load(text)", "np.load(p)",
            "yaml.load(text, Loader=yaml.SafeLoader)", "json.loads(s)", "safetensors.torch.load_file(p)"]
    assert unsafe_loads("\n".join(bad)) == list(range(1, len(bad) + 1))
    assert unsafe_loads("\n".join(good)) == []


def test_no_unsafe_deserialisation_in_shipped_code():
    offenders = [f"{path.relative_to(ROOT)}:{i}" for folder in SHIPPED_CODE for path in sorted((ROOT / folder).rglob("*.py"))
                 for i in unsafe_loads(path.read_text())]
    assert offenders == []
