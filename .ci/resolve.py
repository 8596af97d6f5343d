"""CI: pyproject.toml's dependency set resolves from the package index alone (no local wheel store, no installed
package counts) for the lowest Python that requires-python allows: what a fresh `pip install gankit[onnx]` on that
Python meets.

pip fetches a whole wheel when the index serves no separate metadata for it, and torch's CUDA wheel with its nvidia-*
dependencies is about 3 GB. So torch and torchvision are checked with `pip index versions` (a wheel for that Python
exists in the allowed range; nothing is downloaded), the packages that depend on torch are checked with --no-deps,
and every other dependency, extras included, is resolved in full by `pip install --dry-run`.

    python .ci/resolve.py            # about half a minute with an empty pip cache
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
except ImportError:  # a bare interpreter: pip's own copy of packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
TORCH_FAMILY = {"torch", "torchvision"}     # checked by version listing: never downloaded
TORCH_DEPENDENTS = {"torch-fidelity", "torchmetrics"}  # their own wheel only (--no-deps), or pip would fetch torch for them


def lowest_python(spec: str) -> str:
    """The lowest minor version that requires-python admits, e.g. '>=3.11' -> '3.11'."""
    allowed = SpecifierSet(spec)
    for minor in range(6, 30):
        if Version(f"3.{minor}") in allowed:
            return f"3.{minor}"
    raise SystemExit(f"requires-python {spec!r} admits no Python 3 version")


def pip(*args: str) -> subprocess.CompletedProcess:
    # --isolated: no user pip config and no PIP_* variables, so local wheel stores and extra indexes are not used
    cmd = [sys.executable, "-m", "pip", *args, "--isolated", "--disable-pip-version-check"]
    return subprocess.run(cmd, capture_output=True, text=True)


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    py = lowest_python(project["requires-python"])
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in project.get("optional-dependencies", {}).values() for r in extra]
    target = ["--python-version", py, "--only-binary=:all:"]
    failed = []

    for req in (r for r in reqs if r.name in TORCH_FAMILY):
        proc = pip("index", "versions", req.name, *target)
        found = re.search(r"Available versions: (.*)", proc.stdout)
        versions = [Version(v.strip()) for v in found.group(1).split(",")] if found else []
        ok = [v for v in versions if v in req.specifier]
        print(f"{req}: {'newest wheel for Python ' + py + ': ' + str(max(ok)) if ok else 'NO wheel for Python ' + py}")
        if not ok:
            failed.append(f"{req} ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'none listed'})")

    scratch = ["--dry-run", "--ignore-installed", "--target", str(ROOT / "build" / "resolve-target"), *target]
    dependents = [str(r) for r in reqs if r.name in TORCH_DEPENDENTS]
    rest = [str(r) for r in reqs if r.name not in TORCH_FAMILY | TORCH_DEPENDENTS]
    for label, args in (("torch dependents, own wheels", ["--no-deps", *dependents]), ("the rest, in full", rest)):
        proc = pip("install", *scratch, "--quiet", "--report", "-", *args)
        if proc.returncode != 0:
            failed.append(f"{label}: " + " ".join(proc.stderr.strip().splitlines()[-2:]))
            continue
        picked = json.loads(proc.stdout)["install"]
        print(f"{label}: " + ", ".join(f"{p['metadata']['name']} {p['metadata']['version']}" for p in picked))
    if failed:
        print(f"dependency set does NOT resolve for Python {py}:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print(f"dependency set resolves for Python {py} (requires-python {project['requires-python']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
