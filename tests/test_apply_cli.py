"""`neuronlens apply`: bad input is one line on stderr before any work, and a tiny end-to-end run writes its summary JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}


def _run(*args, cwd=ROOT):
    return subprocess.run([str(BIN / 'neuronlens'), 'apply', *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd)


@pytest.mark.parametrize('args, message', [
    (('adversarial', '--pair', 'star', 'star'), "two different classes, got 'star' twice"),
    (('adversarial', '--pair', 'star', 'blob'), "unknown shape 'blob'"),
    (('segment', '--layers', '7'), 'layer must be an int in [0, 2]'),
    (('segment', '--kind', 'smell'), '--kind must be shape or colour'),
])
def test_apply_refuses_bad_input(tmp_path, args, message):
    r = _run(*args, '--out', tmp_path / 'out', '--cache', tmp_path / 'cache')
    assert r.returncode == 1, r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert lines[-1].startswith('neuronlens apply: error:') and message in lines[-1], r.stderr[-2000:]
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'cache').exists()  # refused before any work


def test_apply_masks_and_cached_only(tmp_path):
    np.save(tmp_path / 'im.npy', np.zeros((2, 64, 64, 3), np.uint8)); np.save(tmp_path / 'mk.npy', np.zeros((2, 32, 32), bool))
    r = _run('segment', '--images-npy', tmp_path / 'im.npy', '--masks', tmp_path / 'mk.npy', '--classes', 'a star', '--out', tmp_path / 'o')
    assert r.returncode == 1 and 'masks must be [n, H, W] = (2, 64, 64)' in r.stderr, r.stderr[-2000:]
    r = _run('ablate', '--cached-only', '--n-images', '9', '--cache', tmp_path / 'c', '--out', tmp_path / 'o')
    assert r.returncode == 1 and 'has no cached second-order run' in r.stderr, r.stderr[-2000:]
