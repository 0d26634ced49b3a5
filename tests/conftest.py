"""Shared pytest fixtures and settings for the neuronlens test suite.

Notebooks are the unit tests (run by `test_notebooks.py`, one test case per notebook); this folder
holds the runners, repository checks, CLI smoke tests and the docs/browser check.
"""
import os
import shutil
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


def png_bytes(a) -> bytes:
    "PNG bytes of an [H, W, 3] uint8 array."
    import io
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(a).save(b, format='PNG')
    return b.getvalue()


def write_image_sets(d:Path, images, captions, n_shards:int, shard:str='shard-{:03d}.tar',
                     image_col:str='image', caption_col:str='caption'):
    "The same captioned images as a folder of PNGs (d/folder), webdataset shards of png + txt (d/wds) and a saved HF dataset (d/hf)."
    import datasets
    import webdataset as wds
    from PIL import Image
    for sub in ('folder', 'wds'): (d / sub).mkdir(exist_ok=True)
    for i, a in enumerate(images): Image.fromarray(a).save(d / 'folder' / f'{i:02d}.png')
    per = -(-len(images) // n_shards)
    for s in range(n_shards):
        with wds.TarWriter(str(d / 'wds' / shard.format(s))) as w:
            for i in range(per * s, min(per * s + per, len(images))):
                w.write({'__key__': f'{i:06d}', 'png': png_bytes(images[i]), 'txt': captions[i]})
    datasets.disable_progress_bars()
    features = datasets.Features({image_col: datasets.Image(), caption_col: datasets.Value('string')})
    rows = {image_col: [{'bytes': png_bytes(a), 'path': None} for a in images], caption_col: list(captions)}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(d / 'hf'))


# A headless Debian chromium driven by Playwright (its own browser download fails here), shared by the docs and
# explorer checks; without chromium the checks are skipped, or fail when CI is set.
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def in_ci() -> bool:
    "Whether the CI environment variable is set (to anything but 0/false/no)."
    return os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no')


def chromium_path():
    "The system chromium ($NEURONLENS_CHROMIUM, `chromium` on PATH, /usr/bin/chromium), or None."
    exe = os.environ.get('NEURONLENS_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    return exe if os.path.exists(exe) else None


@pytest.fixture(scope='session')
def browser():
    exe = chromium_path()
    if not exe:
        msg = "Debian chromium is not installed (apt-get install -y chromium): browser checks not run"
        if in_ci(): pytest.fail(msg + " (CI is set, so this is a failure)", pytrace=False)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()
