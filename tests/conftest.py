"""Shared pytest fixtures and settings for the neuronlens test suite.

Notebooks are the unit tests (run by `test_notebooks.py`, one test case per notebook); this folder
holds the runners, repository checks, CLI smoke tests and the docs/browser check.
"""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'

os.environ.setdefault('HF_HUB_OFFLINE', '1')        # never reach for a model hub in tests
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')


def notebooks():
    "Every notebook of the project, in name order (checkpoints and private `_` notebooks excluded)."
    return sorted(p for p in NBS.rglob('*.ipynb')
                  if '.ipynb_checkpoints' not in p.parts and not p.name.startswith(('_', '.')))


@pytest.fixture(scope='session')
def root() -> Path:
    return ROOT
