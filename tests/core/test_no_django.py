"""The core is science only: importing it must not pull in Django (STYLE.md)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_it_imports_the_core_without_django():
    # A fresh interpreter: in this one, pytest-django may already have imported Django.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", "import segmentation.core, sys; assert 'django' not in sys.modules, "
                               "sorted(m for m in sys.modules if m.startswith('django'))"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
