"""Issue #16 end to end through the installed command: image sources (folder, webdataset shards, HF datasets on
disk), unreadable files, images sized for the encoder, and `neurons` sharded, resumable and split over two
processes by `accelerate launch` (CPU), whose merged result equals the one-process run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, png_bytes, write_image_sets

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}


def _run(*args, launch=False, timeout=600):
    # two CPU processes: `--cpu` would start only one; `--multi_gpu` starts torchrun's processes, which use gloo on CPU
    cmd = ([str(BIN / 'accelerate'), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
            '--dynamo_backend', 'no', '-m', 'neuronlens.app.cli'] if launch else [sys.executable, '-m', 'neuronlens.app.cli'])
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "The same 12 toy scenes (48 px) as a folder, webdataset shards and a saved HF dataset, plus a folder with a bad file."
    from neuronlens.toy.world import sample_batch, split_seeds
    d = tmp_path_factory.mktemp('data')
    sc = sample_batch(split_seeds('test', 12, 500), 48, targets=False)
    write_image_sets(d, sc['image'], sc['caption'], 3)
    (d / 'bad').mkdir()
    for i, im in enumerate(sc['image']):
        (d / 'bad' / f'{i:02d}.png').write_bytes(b'plain text, not a PNG' if i == 7 else png_bytes(im))
    return d


@pytest.fixture(scope='module')
def zoo(tmp_path_factory):
    "A tiny ToyCLIP (second-order) and a tiny captioner (random Llama folder + tiny ToyViT + projection) in a zoo folder."
    from neuronlens.toy.nets import create_toyclip, toyclip_config
    from neuronlens.models.zoo import save_zoo_model
    from neuronlens.limber.captioner import tiny_lm, tiny_encoder, ImageProjection
    from neuronlens.limber.projection import save_projection
    z = tmp_path_factory.mktemp('zoo')
    torch.manual_seed(0)
    clip = create_toyclip(config=toyclip_config(20, image_size=32, width=32, layers=3, heads=2, text_width=32, text_layers=1, embed_dim=16))
    save_zoo_model(clip, 'tinyclip', {'tokenizer': {'words': ['a', 'b']}}, root=z)
    lm, enc = tiny_lm(), tiny_encoder()
    lm.model.save_pretrained(z / 'tiny-lm'); lm.tokenizer.save_pretrained(z / 'tiny-lm')
    save_zoo_model(enc.model, 'tiny-vit', root=z)
    torch.manual_seed(1)
    save_projection(ImageProjection(enc.d_out, lm.d_model, 4, enc.grid), 'projection-tiny', dict(encoder=str(z / 'tiny-vit.safetensors'), lm=str(z / 'tiny-lm')), z)
    return z


def _so(zoo, images, cache, *extra, launch=False):
    return _run('second-order', '--model', zoo / 'tinyclip.safetensors', '--layer', '0', '--images', images, '--n-images', '12',
                '--shard-size', '4', '--batch-size', '4', '--k-top', '3', '--cache', cache, '--device', 'cpu', *extra, launch=launch)


def _so_norms(cache):
    from neuronlens.core import TensorCache
    run, = Path(cache).glob('so-run-*')
    return TensorCache(cache).load('so-run', run.name.split('-', 2)[2])[0]['norms']


def test_second_order_reads_folder_wds_and_hf_alike(data, zoo, tmp_path):
    specs = {'folder': data / 'folder', 'wds': f"wds:{data / 'wds'}/shard-{{000..002}}.tar", 'hf': f"hf:{data / 'hf'}"}
    norms = {}
    for name, spec in specs.items():
        res = _so(zoo, spec, tmp_path / name)
        assert res.returncode == 0, res.stderr[-3000:]
        out = json.loads(res.stdout.strip().splitlines()[-1])
        assert out['n_images'] == 12 and out['n_skipped'] == 0 and ':32x32:' in out['images'], out  # resized to the model's 32 px
        norms[name] = _so_norms(tmp_path / name)
    assert torch.equal(norms['folder'], norms['wds']) and torch.equal(norms['folder'], norms['hf'])  # same pixels, same effects
    two = _so(zoo, specs['wds'], tmp_path / 'two', launch=True)
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads(two.stdout.strip().splitlines()[-1])['processes'] == 2
    assert torch.allclose(_so_norms(tmp_path / 'two'), norms['wds'], atol=1e-6)  # two processes, one merged result


def test_unreadable_file_one_line_or_skipped(data, zoo, tmp_path):
    res = _so(zoo, data / 'bad', tmp_path / 'c1')
    errors = [l for l in res.stderr.splitlines() if ': error: ' in l]  # (progress bars also write to stderr)
    assert res.returncode == 1 and len(errors) == 1 and 'Traceback' not in res.stderr, res.stderr[-3000:]
    assert errors[0].startswith('neuronlens second-order: error: ') and '07.png is not a readable image' in errors[0] and '--skip-bad' in errors[0]
    ok = _so(zoo, data / 'bad', tmp_path / 'c2', '--skip-bad')
    assert ok.returncode == 0, ok.stderr[-3000:]
    out = json.loads(ok.stdout.strip().splitlines()[-1])
    assert (out['n_used'], out['n_skipped']) == (11, 1) and out['skipped'][0].endswith('07.png')
    nb = _run('neurons', '--encoder', 'tiny', '--zoo', zoo, '--images', data / 'bad', '--n-images', '12', '--top-k', '4', '--no-score',
              '--cache', tmp_path / 'c3', '--out', tmp_path / 'o3', '--no-progress')
    assert nb.returncode == 1 and '07.png is not a readable image' in nb.stderr and 'Traceback' not in nb.stderr, nb.stderr[-3000:]


def _neurons(zoo, cache, out, *extra, launch=False):
    return _run('neurons', '--encoder', 'tiny', '--zoo', zoo, '--images', 'toy:test', '--n-images', '12', '--shard-size', '4',
                '--batch-size', '4', '--top-k', '6', '--use-captions', '--no-score', '--cache', cache, '--out', out, '--device', 'cpu',
                '--no-progress', *extra, launch=launch)


def test_neurons_sharded_resumable_and_two_processes(zoo, tmp_path):
    one = _neurons(zoo, tmp_path / 'c1', tmp_path / 'o1')
    assert one.returncode == 0, one.stderr[-3000:]
    s1 = json.loads((tmp_path / 'o1' / 'summary.json').read_text())
    assert (s1['n_shards'], s1['n_computed'], s1['n_valid'], s1['processes']) == (3, 3, 12, 1), s1
    # a run that died after its first shard continues from there: remove two finished shards and run again
    shards = sorted((tmp_path / 'c1').glob('mm-shard-*'), key=lambda p: p.stat().st_mtime)
    assert len(shards) == 3
    import shutil
    for p in shards[1:]: shutil.rmtree(p)
    again = _neurons(zoo, tmp_path / 'c1', tmp_path / 'o1b')
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / 'o1b' / 'summary.json').read_text())['n_computed'] == 2
    two = _neurons(zoo, tmp_path / 'c2', tmp_path / 'o2', launch=True)
    assert two.returncode == 0, two.stderr[-3000:]
    s2 = json.loads((tmp_path / 'o2' / 'summary.json').read_text())
    assert s2['processes'] == 2 and len(list((tmp_path / 'c2').glob('mm-shard-*'))) == 3
    for a, b in (('o1', 'o2'), ('o1', 'o1b')):
        ua, ub = ((tmp_path / o / 'units.jsonl').read_text() for o in (a, b))
        assert ua == ub, (a, b)  # merged = single process: same concepts, units, scores, decodings


def test_neurons_images_sized_for_the_encoder(data, zoo, tmp_path):
    res = _run('neurons', '--encoder', 'tiny', '--zoo', zoo, '--images', f"wds:{data / 'wds'}/shard-{{000..002}}.tar", '--n-images', '8',
               '--top-k', '4', '--use-captions', '--no-score', '--cache', tmp_path / 'c', '--out', tmp_path / 'o', '--no-progress')
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((tmp_path / 'o' / 'summary.json').read_text())
    assert s['images'].startswith('wds:') and ':32x32:shortest:' in s['images'] and s['n_images'] == 8, s  # the tiny encoder's 32 px, not 64
