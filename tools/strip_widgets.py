"""Drop what a notebook run leaves behind from progress bars: the notebook's saved widget state and the
outputs that are tqdm progress-bar widgets. Neither is content: without a live kernel the state draws
nothing, and the docs site would show a placeholder per bar.

Usage: python tools/strip_widgets.py nbs/NAME.ipynb [...]   (then nbdev_clean, as after any edit)
"""
import re, sys

import nbformat

WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
BAR = re.compile(r'\d+%\|')  # tqdm's text fallback: "desc:  50%|#####     | 3/6 [...]"


def is_progress_bar(o) -> bool:
    "A display output that is a tqdm widget (its plain-text fallback is a progress bar)."
    d = o.get('data', {})
    txt = d.get('text/plain', '')
    return WIDGET_MIME in d and bool(BAR.search(''.join(txt) if isinstance(txt, list) else txt))


def strip(nb) -> int:
    "Remove widget state and progress-bar outputs from `nb` in place; the number of things removed."
    n = int(nb.metadata.pop('widgets', None) is not None)
    for c in nb.cells:
        if c.cell_type != 'code': continue
        keep = [o for o in c.outputs if not is_progress_bar(o)]
        n += len(c.outputs) - len(keep); c.outputs = keep
    return n


def main(paths) -> int:
    for p in paths:
        nb = nbformat.read(p, as_version=4); n = strip(nb)
        if n: nbformat.write(nb, p)
        print(f'{p}: removed {n} widget state / progress-bar output(s)')
    return 0


if __name__ == '__main__':
    if len(sys.argv) < 2: sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
