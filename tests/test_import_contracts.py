"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and break when a rule is broken.

``make lint`` runs ``lint-imports`` too; this test is how ``make test`` (and so CI) runs it.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("segmentation", "annotation", "frontend", "ezquant_web")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, capture_output=True, text=True,
                          timeout=120)


def test_it_keeps_every_import_contract():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def _not_python(folder: str, names: list[str]) -> list[str]:
    skipped = {"node_modules", "static", "templates", "__pycache__"}
    return [n for n in names if n in skipped or not (n.endswith(".py") or (Path(folder) / n).is_dir())]


@pytest.fixture(scope="module")
def copy_of_the_code(tmp_path_factory) -> Path:
    """The four packages' Python files and pyproject.toml, to break a rule in."""
    root = tmp_path_factory.mktemp("code")
    shutil.copy(ROOT / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=_not_python)
    return root


BREAKS = [  # (module, the import added to it, the contract it breaks)
    ("segmentation/core/errors.py", "import django", "The science (segmentation.core) imports no web framework"),
    ("annotation/storage/errors.py", "from django.db import models", "The storage (annotation.storage) imports"),
    ("segmentation/services.py", "from frontend import views", "Apps never import the pages"),
    ("annotation/selectors.py", "from segmentation import services", "Pages above segmentation above annotation"),
    ("ezquant_web/jobs/kinds.py", "from annotation.models import VolumeImportJob", "The job machinery"),
    ("annotation/roles.py", "from ezquant_web.api import Pagination", "raise ApplicationError without DRF"),
    ("segmentation/consumers.py", "from annotation.models import Volume", "read annotation through its selectors"),
    ("segmentation/core/restoration.py", "from .engine import SegmentationEngine", "No cycles between"),
    ("segmentation/core/lora.py", "from .adapter import ModelAdapter", "The science core in layers"),
]


def test_it_fails_when_a_rule_is_broken(copy_of_the_code):
    for module, line, _ in BREAKS:
        path = copy_of_the_code / module
        path.write_text(path.read_text() + f"\n{line}\n")
    result = _lint_imports(copy_of_the_code)
    assert result.returncode == 1, result.stdout + result.stderr
    summary, _, broken = " ".join(result.stdout.split()).partition("Broken contracts")
    for module, _, contract in BREAKS:
        status = re.search(r" (KEPT|BROKEN)", summary[summary.index(contract):]).group(1)
        assert status == "BROKEN", (contract, result.stdout)
        assert Path(module).stem in broken, (module, result.stdout)  # the import that broke it is named
