"""The pages' scripts are esbuild entry points (frontend/build.mjs): every script a template
loads is a built bundle in static/frontend/dist/, listed in build.mjs's ENTRIES, and no page
script is left unbundled in static/frontend/.
"""

import re
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
SCRIPT = re.compile(r"""<script[^>]*\ssrc="\{% static '([^']+)' %\}"[^>]*>""")
ENTRY = re.compile(r"^\s+(\w+): '(src/[^']+\.js)',", re.MULTILINE)


def _entries() -> dict[str, str]:
    text = (FRONTEND / "build.mjs").read_text()
    return dict(ENTRY.findall(text[text.index("export const ENTRIES"):]))


def _loaded_scripts() -> dict[str, str]:
    """static path -> the template that loads it."""
    found = {}
    for template in sorted((FRONTEND / "templates").rglob("*.html")):
        for tag in SCRIPT.finditer(template.read_text()):
            found[tag.group(1)] = template.name
    return found


def test_it_loads_only_built_entry_points_as_modules():
    entries = _entries()
    assert "viewer" in entries and "actions" in entries, entries
    scripts = _loaded_scripts()
    assert scripts, "no template loads a script"
    for path, template in scripts.items():
        match = re.fullmatch(r"frontend/dist/(\w+)\.js", path)
        assert match, f"{template} loads {path}, which is not a bundle of frontend/src (build.mjs ENTRIES)"
        assert match.group(1) in entries, f"{template} loads {path}: add it to ENTRIES in frontend/build.mjs"
    for name, source in entries.items():
        assert (FRONTEND / source).is_file(), f"ENTRIES['{name}'] = {source} does not exist"
        assert f"frontend/dist/{name}.js" in scripts, f"no template loads the entry point {name}"


def test_it_leaves_no_page_script_unbundled():
    assert sorted(p.name for p in (FRONTEND / "static" / "frontend").glob("*.js")) == []


def test_it_finds_every_bundle_built():
    """`make frontend` (which `make test` runs first) builds them all in one esbuild run."""
    from django.contrib.staticfiles import finders

    for name in _entries():
        assert finders.find(f"frontend/dist/{name}.js"), f"no bundle {name}.js: run `make frontend`"
