"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does, without needing Quarto).

Markdown cells are copied; visible code cells become ```python blocks with their text outputs;
cells marked `#| hide` are left out.  `--check` exits 1 if README.md is out of date.
"""
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _hidden(src: str) -> bool:
    return any(l.replace(' ', '').startswith('#|hide') for l in src.splitlines() if l.startswith('#'))


def readme_text(nb_path: Path = ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = nbformat.read(nb_path, as_version=4)
    out = ['<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->', '']
    for c in nb.cells:
        if c.cell_type == 'markdown':
            out += [c.source.strip(), '']
        elif c.cell_type == 'code' and c.source.strip() and not _hidden(c.source):
            lines = [l for l in c.source.splitlines() if not l.startswith('#|')]
            out += ['```python', *lines, '```', '']
            for o in c.get('outputs', []):
                data = o.get('data', {})
                if set(data) - {'text/plain'}: continue  # pictures and plots live in the docs, not the README
                text = o.get('text') or data.get('text/plain')
                if text: out += ['```', (text if isinstance(text, str) else ''.join(text)).rstrip(), '```', '']
    return '\n'.join(out).rstrip() + '\n'


if __name__ == '__main__':
    text, dest = readme_text(), ROOT / 'README.md'
    if '--check' in sys.argv:
        ok = dest.exists() and dest.read_text() == text
        print('README.md is up to date' if ok else 'README.md is out of date: run python tools/make_readme.py')
        sys.exit(0 if ok else 1)
    dest.write_text(text)
    print(f'wrote {dest}')
