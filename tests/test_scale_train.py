"""`train projection` on captioned data users keep (issue #16): webdataset shards of png + txt, a saved HF dataset
with image and caption columns, a folder with a captions file; with local encoders (a transformers BEiT folder, an
open_clip image tower in open_clip's local-dir format). A few steps each on tiny random models the test writes."""
import argparse
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, write_image_sets

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    "16 captioned toy scenes (40 px) in three formats, a tiny LM folder, a tiny BEiT folder and a tiny open_clip folder."
    from safetensors.torch import save_file
    from transformers import BeitConfig, BeitModel
    from neuronlens.toy.world import sample_batch, split_seeds
    from neuronlens.limber.captioner import tiny_lm
    d = tmp_path_factory.mktemp('captioned')
    sc = sample_batch(split_seeds('train', 16), 40, targets=False)
    write_image_sets(d, sc['image'], sc['caption'], 2, shard='cc-{:02d}.tar', image_col='img', caption_col='text')
    with open(d / 'captions.csv', 'w', newline='') as f:
        csv.writer(f).writerows([('filename', 'caption')] + [(f'{i:02d}.png', c) for i, c in enumerate(sc['caption'])])
    lm = tiny_lm(); lm.model.save_pretrained(d / 'lm'); lm.tokenizer.save_pretrained(d / 'lm')
    torch.manual_seed(0)
    BeitModel(BeitConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
              add_pooling_layer=False).save_pretrained(d / 'beit')
    (d / 'oc').mkdir()
    import open_clip
    ocfg = dict(embed_dim=16, vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=1, head_width=16),
                text_cfg=dict(context_length=8, vocab_size=49408, width=16, heads=2, layers=1))
    (d / 'oc' / 'open_clip_config.json').write_text(json.dumps({'model_cfg': ocfg, 'preprocess_cfg': {'mean': [0.5] * 3, 'std': [0.5] * 3}}))
    save_file({k: v.contiguous() for k, v in open_clip.CLIP(**ocfg).state_dict().items()}, str(d / 'oc' / 'open_clip_model.safetensors'))
    return d, sc


def _train(d, encoder, images, *extra, out):
    "Run `train projection` in-process (3 steps); returns its summary."
    from neuronlens.limber import projection as P
    p = argparse.ArgumentParser(); P.add_projection_train_args(p)
    args = p.parse_args(['--encoder', str(encoder), '--lm', str(d / 'lm'), '--images', images, '--steps', '3', '--batch-size', '4',
                         '--n-tokens', '4', '--warmup', '1', '--lr', '0.05', '--n-eval', '0', '--device', 'cpu',
                         '--out', str(out), '--cache', str(out / 'cache'), '--no-progress', *extra])
    with contextlib.redirect_stdout(io.StringIO()): assert P.run_projection_train_cli(args) == 0
    return json.loads((out / 'summary.json').read_text())


@pytest.mark.parametrize('fmt', ['wds', 'hf', 'folder'])
def test_train_projection_on_captioned_data(world, fmt, tmp_path):
    d, sc = world
    images, extra = {'wds': (f"wds:{d / 'wds'}/cc-{{00..01}}.tar", []), 'hf': (f"hf:{d / 'hf'}", ['--caption-key', 'text']),
                     'folder': (str(d / 'folder'), ['--captions', str(d / 'captions.csv')])}[fmt]
    s = _train(d, d / 'beit', images, *extra, out=tmp_path / 'run')
    assert s['finished'] and s['steps'] == 3 and 'metrics' not in s  # toy-world metrics only for toy training
    feats, = (tmp_path / 'run' / 'cache').glob('patch-features-*')
    meta = json.loads((feats / 'meta.json').read_text())['meta']
    assert meta['n'] == 16 and meta['source']['source'].startswith(fmt if fmt != 'folder' else 'folder:') and ':32x32:' in meta['source']['source']


def test_captions_reach_the_loss(world, tmp_path):
    "The loss sees the data's own captions: the same run is reproducible, and with the captions shuffled it ends elsewhere."
    from neuronlens.data import sources as sources
    from neuronlens.limber import projection as P
    from neuronlens.core import TensorCache
    d, sc = world
    data = sources.TrainingData(sources.image_source(f"wds:{d / 'wds'}/cc-{{00..01}}.tar", size=32, caption_key='txt'))
    assert data.captions(range(16)) == list(sc['caption'])
    class Shuffled(sources.TrainingData):
        def captions(self, index, epochs=None): return super().captions([(int(i) + 5) % 16 for i in index])
    enc = P.load_encoder(f"open_clip:local-dir:{d / 'oc'}")
    assert enc.grid == (4, 4) and enc.preprocess.size == (32, 32)
    lm = P.models.load_causal_lm(d / 'lm')
    cfg = P.ProjectionConfig(steps=4, batch_size=4, n_tokens=4, warmup=1, lr=0.05, n_eval=0, progress=False, device='cpu')
    cache = TensorCache(tmp_path / 'cache')
    w = [P.train_projection(enc, lm, cfg, tmp_path / f'r{i}', cache=cache, data=dd).projection.proj.weight.detach().clone()
         for i, dd in enumerate((data, data, Shuffled(data.source)))]
    assert torch.equal(w[0], w[1]) and not torch.allclose(w[0], w[2])


def test_bad_training_options_fail_early(world, tmp_path):
    d, _ = world
    from neuronlens.core import ConfigError
    with pytest.raises(ConfigError, match='needs its captions'):
        _train(d, d / 'beit', str(d / 'folder'), out=tmp_path / 'x')
    with pytest.raises(ConfigError, match="no caption column 'caption'"):
        _train(d, d / 'beit', f"hf:{d / 'hf'}", out=tmp_path / 'y')


def test_train_projection_command_end_to_end(world, tmp_path):
    d, _ = world
    res = subprocess.run([sys.executable, '-m', 'neuronlens.app.cli', 'train', 'projection', '--encoder', str(d / 'beit'), '--lm', str(d / 'lm'),
                          '--images', f"hf:{d / 'hf'}", '--caption-key', 'text', '--steps', '2', '--batch-size', '4', '--n-tokens', '4',
                          '--n-eval', '0', '--device', 'cpu', '--out', str(tmp_path / 'run'), '--cache', str(tmp_path / 'c'), '--no-progress',
                          '--ship', '--zoo', str(tmp_path / 'zoo')], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    card = json.loads((tmp_path / 'zoo' / 'projection-beit.json').read_text())
    assert card['steps'] == 2 and card['encoder'] == str(d / 'beit')
