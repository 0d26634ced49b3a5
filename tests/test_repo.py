"""Repository checks: the library matches its notebooks, notebooks are clean, valid and small."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, NBS, notebooks

sys.path.insert(0, str(ROOT / 'tools'))
from strip_widgets import is_progress_bar  # noqa: E402

BIN = Path(sys.executable).parent
MAX_NB_BYTES = 500_000


def _snapshot(paths):
    return {p: p.read_bytes() for p in paths}


def _changed_by(cmd, paths_fn):
    "Run `cmd`; return the files it changed, added or removed among `paths_fn()`, restoring the originals."
    before = _snapshot(paths_fn())
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    after = _snapshot(paths_fn())
    changed = sorted(str(p.relative_to(ROOT)) for p in set(before) | set(after) if before.get(p) != after.get(p))
    for p, b in before.items(): p.write_bytes(b)           # nothing a user made is lost
    for p in set(after) - set(before): p.unlink()
    return changed


def test_library_matches_notebooks():
    lib = lambda: sorted((ROOT / 'neuronlens').rglob('*.py'))
    changed = _changed_by([BIN / 'nbdev_export'], lib)
    assert not changed, f"nbdev_export changes {changed}: run nbdev_export and commit the library"


def test_notebooks_are_clean():
    changed = _changed_by([BIN / 'nbdev_clean'], notebooks)
    assert not changed, f"nbdev_clean changes {changed}: run nbdev_clean before committing"


@pytest.mark.parametrize('nb', notebooks(), ids=lambda p: p.name)
def test_notebook_valid_and_small(nb):
    nbj = nbformat.read(nb, as_version=4)
    nbformat.validate(nbj)
    assert 'widgets' not in nbj.metadata, f"{nb.name} saves widget state: run tools/strip_widgets.py on it"
    bars = [c.get('id') for c in nbj.cells if c.cell_type == 'code' and any(is_progress_bar(o) for o in c.outputs)]
    assert not bars, f"{nb.name} saves progress-bar widgets in cells {bars}: run tools/strip_widgets.py on it"
    size = nb.stat().st_size
    assert size <= MAX_NB_BYTES, f"{nb.name} is {size/1e3:.0f} KB (limit {MAX_NB_BYTES/1e3:.0f} KB): strip large outputs"
    text = nb.read_text()
    assert 'plotly.js v' not in text, f"{nb.name} embeds plotly.js; use the 'plotly_mimetype' renderer"
    assert 'cdn.plot.ly' not in text, f"{nb.name} loads plotly.js from a CDN; use the 'plotly_mimetype' renderer"


def test_quarto_config_resolves():
    q = NBS / '_quarto.yml'
    assert q.exists() and q.resolve() == (ROOT / '_quarto.yml').resolve(), "nbs/_quarto.yml must resolve to the top-level _quarto.yml"


def test_readme_matches_index():
    res = subprocess.run([sys.executable, ROOT / 'tools' / 'make_readme.py', '--check'], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _semicolons(path):
    "Lines of `path` where `;` separates two statements (style rule 22: one statement per line)."
    import tokenize
    with open(path, 'rb') as f:
        return [t.start[0] for t in tokenize.tokenize(f.readline) if t.type == tokenize.OP and t.string == ';']


def test_library_one_statement_per_line():
    lib = [p for p in sorted((ROOT / 'neuronlens').glob('*.py')) if p.name != '_modidx.py']
    found = {p.name: _semicolons(p)[:5] for p in lib if _semicolons(p)}
    assert not found, f"statements joined by ';' in {found}: run `python tools/format_nbs.py` on their notebooks"
