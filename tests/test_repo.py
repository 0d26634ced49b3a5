"""Repository checks: the library matches its notebooks, notebooks are clean, valid and small."""
import json
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
    ids = [c.get('id') for c in json.loads(nb.read_text())['cells']]  # nbformat.read renames repeats: read the file
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert not repeated, f"{nb.name} repeats cell ids {repeated}: give new cells fresh ids"
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


# ----------------------------------------------------------------------------------------------
# Architecture (issue #22): the package reads as its design

LAYERS = {  # subpackage -> the subpackages it may import (besides itself); data flows one way
    'core': set(),
    'toy': {'core', 'models'},
    'models': {'core', 'toy'},
    'data': {'core', 'toy', 'models'},
    'limber': {'core', 'toy', 'models', 'data'},
    'lens': {'core', 'toy', 'models', 'data'},
    'views': {'core', 'toy', 'models', 'data', 'limber', 'lens'},
    'app': {'core', 'toy', 'models', 'data', 'limber', 'lens', 'views'},
}


def _module_imports():
    "{module: [(imported module, imported name or None), ...]} for every library module, imports inside functions included."
    import ast
    lib = ROOT / 'neuronlens'
    out = {}
    for p in sorted(lib.rglob('*.py')):
        if p.name == '_modidx.py': continue
        parts = p.relative_to(ROOT).with_suffix('').parts
        mod = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        pkg = mod if p.name == '__init__.py' else mod.rpartition('.')[0]
        found = []
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Import):
                found += [(a.name, None) for a in n.names if a.name.startswith('neuronlens')]
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ''
                if n.level:
                    anchor = pkg.split('.')[:len(pkg.split('.')) - (n.level - 1)]
                    base = '.'.join(anchor + ([base] if base else []))
                if not base.startswith('neuronlens'): continue
                for a in n.names:
                    sub = f'{base}.{a.name}'
                    found.append((sub, None) if (lib / Path(*sub.split('.')[1:])).with_suffix('.py').exists() else (base, a.name))
        out[mod] = found
    return out


def _cycles(graph):
    "Strongly connected components with more than one module (Tarjan), plus self-imports."
    index, low, stack, on, comps, i = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1 or v in graph.get(v, ()): comps.append(sorted(comp))
    for v in graph:
        if v not in index: visit(v)
    return comps


def test_no_import_cycles():
    imports = _module_imports()
    graph = {m: {t for t, _ in found if t in imports and t != 'neuronlens'} for m, found in imports.items()}
    assert not _cycles(graph), f"import cycles among neuronlens modules: {_cycles(graph)}"


def test_no_private_names_across_modules():
    bad = [f"{m} <- {t}.{n}" for m, found in _module_imports().items() for t, n in found
           if n and n.startswith('_') and t != m]
    assert not bad, f"private names imported across modules (make them public in the lower module): {bad}"


def test_layers_flow_one_way():
    "The two papers never import each other; views import methods, never the reverse; the app is on top."
    bad = []
    for m, found in _module_imports().items():
        top = m.split('.')[1] if m.count('.') else 'core'
        if m == 'neuronlens': continue
        for t, _ in found:
            tt = t.split('.')[1] if t.count('.') else None
            if tt and tt != top and tt not in LAYERS.get(top, set()):
                bad.append(f'{m} -> {t}')
    assert not bad, f"imports against the direction of data flow {LAYERS}: {sorted(set(bad))}"


def test_modules_a_reader_can_hold():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for p in (ROOT / 'neuronlens').rglob('*.py') if p.name != '_modidx.py'}
    big = {k: v for k, v in sizes.items() if v > 850}
    assert not big, f"modules over about 800 lines: {big}"
