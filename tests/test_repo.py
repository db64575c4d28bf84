"""The README's Quickstart is what CI runs."""
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


def test_no_unsafe_deserialisation_in_package():
    import re
    offenders = []
    for path in (ROOT / "neuralassets").rglob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bpickle\.loads?\(|\bdill\.", line) or (
                    re.search(r"torch\.load\(", line) and "weights_only=True" not in line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}")
    assert offenders == []
