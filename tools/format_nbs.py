"""Format the library code of the notebooks: one statement per line, lines a reader can see whole.

Runs black (line length 120, strings left as written) on every `#| export` / `#| exporti` cell, and only
there: examples and tests keep their shape. Two things black would get wrong in nbdev notebooks are
handled around it:

- a multi-line signature or call whose parameters carry inline comments (nbdev's docments) gets a trailing
  comma first, so black puts one parameter per line and each comment stays with its parameter;
- black writes directives as `# | export`; they are put back as `#| export`.

Each cell's syntax tree is checked to be unchanged (black checks it too). Black is a development tool, not a
dependency of the library:

    pip install black && python tools/format_nbs.py [nbs/20_second_order.ipynb ...] [--check]
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPORT = re.compile(r'^\s*#\|\s*export(i)?\b', re.M)
DIRECTIVE = re.compile(r'^(\s*)# \| ', re.M)


def _end(node: ast.AST) -> tuple[int, int]:
    "(line, byte column) where `node` ends."
    return node.end_lineno, node.end_col_offset


def _last_item_end(node: ast.AST) -> tuple[int, int] | None:
    "Where the last parameter of a def, or the last argument of a call, ends (None: nothing to put a comma after)."
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = node.args
        parts = [*a.posonlyargs, *a.args, a.vararg, *a.kwonlyargs, a.kwarg, *a.defaults, *[d for d in a.kw_defaults if d]]
        parts = [p for p in parts if p is not None]
        return max(_end(p) for p in parts) if parts else None
    if isinstance(node, ast.Call):
        if len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.GeneratorExp): return None
        parts = [*node.args, *node.keywords]
        return max(_end(p) for p in parts) if parts else None
    return None


def _has_comment(lines: list[bytes], start: int, stop: int) -> bool:
    "Whether lines `start`..`stop` (1-based, inclusive) hold a `#` comment (a rough check; strings with # only add a comma)."
    return any(b'#' in lines[i - 1] for i in range(start, stop + 1))


def add_trailing_commas(src: str) -> str:
    "A trailing comma after the last parameter of every multi-line def or call that has comments inside."
    tree = ast.parse(src)
    lines = src.encode().split(b'\n')
    spots = []
    for node in ast.walk(tree):
        end = _last_item_end(node)
        if end is None or end[0] == node.lineno: continue
        if not _has_comment(lines, node.lineno, end[0]): continue
        spots.append(end)
    for line, col in sorted(set(spots), reverse=True):
        rest = lines[line - 1][col:]
        nxt = _next_code_char(lines, line - 1, col)
        if nxt in (b',', None): continue
        lines[line - 1] = lines[line - 1][:col] + b',' + rest
    out = b'\n'.join(lines).decode()
    if ast.dump(ast.parse(out)) != ast.dump(tree): raise ValueError('adding trailing commas changed the syntax tree')
    return out


def _next_code_char(lines: list[bytes], i: int, col: int) -> bytes | None:
    "The first character after (line i, col) that is not blank or inside a comment."
    line = lines[i][col:]
    while i < len(lines):
        s = line.split(b'#', 1)[0].strip()
        if s: return s[:1]
        i += 1
        line = lines[i] if i < len(lines) else b''
    return None


def format_cell(src: str, black) -> str:
    "One export cell formatted (see the module docstring)."
    mode = black.Mode(line_length=120, string_normalization=False)
    body = add_trailing_commas(src)
    out = black.format_str(body, mode=mode).rstrip('\n')
    out = DIRECTIVE.sub(r'\1#| ', out)
    if ast.dump(ast.parse(out)) != ast.dump(ast.parse(src)): raise ValueError('formatting changed the syntax tree')
    return out


def _is_export(src: str) -> bool:
    "Whether a cell's leading directives (`#| ...` lines) include `export` or `exporti`."
    for line in src.splitlines():
        if not line.lstrip().startswith('#|'): return False
        if EXPORT.match(line): return True
    return False


def format_notebook(path: Path, black, check: bool = False) -> int:
    "Format the export cells of one notebook in place; returns how many cells changed (`check`: none written)."
    nb = json.loads(path.read_text())
    changed = 0
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] != 'code' or not _is_export(src): continue
        new = format_cell(src, black)
        if new != src:
            changed += 1
            cell['source'] = new.splitlines(keepends=True)
    if changed and not check: path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='*', type=Path, help='default: every notebook in nbs/')
    ap.add_argument('--check', action='store_true', help='write nothing; exit 1 if a cell would change')
    a = ap.parse_args(argv)
    try: import black
    except ImportError:
        print('format_nbs: black is not installed (pip install black)', file=sys.stderr)
        return 2
    paths = a.notebooks or sorted((ROOT / 'nbs').glob('*.ipynb'))
    total = 0
    for p in paths:
        n = format_notebook(p, black, a.check)
        total += n
        if n: print(f"{p}: {n} cell(s) {'would change' if a.check else 'formatted'}")
    return 1 if a.check and total else 0


if __name__ == '__main__':
    sys.exit(main())
