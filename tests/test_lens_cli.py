"""`neuronlens second-order` end to end: one process, and two processes under `accelerate launch` on CPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.fixture(scope='module')
def tiny_zoo_model(tmp_path_factory):
    from neuronlens.toy.nets import create_toyclip, toyclip_config
    from neuronlens.models.zoo import save_zoo_model
    d = tmp_path_factory.mktemp('zoo')
    torch.manual_seed(0)
    m = create_toyclip(config=toyclip_config(20, image_size=32, width=32, layers=3, heads=2, text_width=32, text_layers=1, embed_dim=16))
    return save_zoo_model(m, 'tiny', {'tokenizer': {'words': ['a', 'b']}}, root=d)


def _args(model, cache):
    return ['second-order', '--model', str(model), '--layer', '0', '--n-images', '24', '--size', '32',
            '--shard-size', '8', '--batch-size', '8', '--k-top', '4', '--cache', str(cache), '--device', 'cpu']


def _load(cache):
    from neuronlens.core import TensorCache
    runs = sorted(Path(cache).glob('so-run-*'))
    assert len(runs) == 1, runs
    return TensorCache(cache).load('so-run', runs[0].name.split('-', 2)[2])[0]


def test_second_order_cli_single_and_two_processes(tiny_zoo_model, tmp_path):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    one = subprocess.run([str(BIN / 'neuronlens'), *_args(tiny_zoo_model, tmp_path / 'c1')], capture_output=True, text=True, env=env, cwd=ROOT)
    assert one.returncode == 0, one.stderr[-3000:]
    assert json.loads(one.stdout.strip().splitlines()[-1])['n_images'] == 24
    # `--multi_gpu` starts two torchrun processes (gloo on CPU); `--cpu` would start one only
    two = subprocess.run([str(BIN / 'accelerate'), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
                          '--mixed_precision', 'no', '--dynamo_backend', 'no', '-m', 'neuronlens.app.cli',
                          *_args(tiny_zoo_model, tmp_path / 'c2')],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads(two.stdout.strip().splitlines()[-1])['processes'] == 2
    a, b = _load(tmp_path / 'c1'), _load(tmp_path / 'c2')
    assert len(list((tmp_path / 'c2').glob('so-shard-*'))) == 3
    for k in ('norms', 'top_idx', 'directions'):
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k


def test_second_order_cli_bad_input(tiny_zoo_model, tmp_path):
    bad = subprocess.run([str(BIN / 'neuronlens'), *_args(tiny_zoo_model, tmp_path), '--layer', '7'], capture_output=True, text=True)
    assert bad.returncode == 1 and 'layer must be' in bad.stderr, bad.stderr[-2000:]
    empty = tmp_path / 'empty'; empty.mkdir()
    res = subprocess.run([str(BIN / 'neuronlens'), *_args(tiny_zoo_model, tmp_path), '--images', str(empty)], capture_output=True, text=True)
    assert res.returncode == 1 and 'no images under' in res.stderr, res.stderr[-2000:]
