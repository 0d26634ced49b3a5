"""Run every notebook as one pytest case, the way `nbdev_test` runs them.

Cells flagged with a `tst_flags` flag from settings.ini (`slow`, `gpu`, `notest`) are skipped unless
named in `NEURONLENS_TEST_FLAGS` (e.g. `NEURONLENS_TEST_FLAGS="slow gpu"`), like `nbdev_test --flags`.
"""
import configparser
import os

import pytest
from nbdev import test as nbdev_test_mod

from conftest import ROOT, notebooks


def _skip_flags():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    return cfg['DEFAULT'].get('tst_flags', '').split()


@pytest.mark.parametrize('nb', notebooks(), ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_notebook(nb, capfd):
    force = os.environ.get('NEURONLENS_TEST_FLAGS', '').split()
    ok, secs = nbdev_test_mod.test_nb(nb, skip_flags=_skip_flags(), force_flags=force, showerr=True, basepath=ROOT)
    if not ok:
        err = capfd.readouterr().err
        pytest.fail(f"notebook {nb.name} failed after {secs:.1f}s:\n{err[-6000:]}", pytrace=False)
