"""Give a rebuilt notebook back the cell ids its committed version had, for cells whose source is unchanged.

Executing a notebook from a jupytext script re-generates every cell id, which makes diffs (and the exported
modules' `# %%` markers) churn. Usage: python tools/keep_nb_ids.py nbs/NAME.ipynb [REV]  (REV defaults to HEAD);
then run nbdev_export and nbdev_clean on that notebook.
"""
import subprocess, sys

import nbformat


def main(path: str, rev: str = 'HEAD') -> int:
    old = subprocess.run(['git', 'show', f'{rev}:{path}'], capture_output=True, text=True)
    if old.returncode: print(f'{path} is not in {rev}: nothing to keep', file=sys.stderr); return 0
    ids = {}
    for c in nbformat.reads(old.stdout, as_version=4).cells: ids.setdefault(c.source, c.get('id'))
    new = nbformat.read(path, as_version=4); used, kept = set(), 0
    for c in new.cells:
        i = ids.get(c.source)
        if i and i not in used: c['id'] = i; used.add(i); kept += 1
    nbformat.write(new, path)
    print(f'{kept} of {len(new.cells)} cell ids kept from {rev}')
    return 0


if __name__ == '__main__':
    if len(sys.argv) not in (2, 3): sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
