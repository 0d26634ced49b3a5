"""The real-data commands as a user runs them (subprocesses): one happy path each on tiny models and tiny datasets in
their exact formats, and bad input refused in one stderr line, exit 1 or 2, before anything is written."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT

BIN = Path(sys.executable).parent
NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
WORDS = ['a red circle', 'a blue square on the left', 'a green star', 'a small heart', 'a large moon']


def _png(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, format='PNG')


def _tiny_clip(root):
    "A tiny random open_clip ViT in open_clip's `local-dir:` folder format."
    import open_clip
    from safetensors.torch import save_file
    cfg = dict(embed_dim=16, vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=3, head_width=8),
               text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=4, layers=1))
    root.mkdir()
    torch.manual_seed(0)
    (root / 'open_clip_config.json').write_text(json.dumps({'model_cfg': cfg, 'preprocess_cfg': {'mean': [0.5] * 3, 'std': [0.5] * 3}}))
    save_file({k: v.contiguous() for k, v in open_clip.model.CLIP(**cfg).state_dict().items()}, str(root / 'open_clip_model.safetensors'))


def _cifar10(root, rng):
    d = root / 'cifar-10-batches-py'
    d.mkdir(parents=True)
    for f in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        with open(d / f, 'wb') as fh:
            pickle.dump({b'labels': rng.integers(0, 10, 6).tolist(), b'data': rng.integers(0, 256, (6, 3072), dtype=np.uint8)}, fh)
    with open(d / 'batches.meta', 'wb') as fh:
        pickle.dump({b'label_names': NAMES}, fh)


def _gtsegs(path, rng):
    "gtsegs_ijcv.mat as MATLAB v7.3 writes it: object references under /value/img and /value/gt."
    import h5py
    with h5py.File(path, 'w', userblock_size=512) as f:
        refs = f.create_group('#refs#')
        ir, gr = np.empty((3, 1), dtype=h5py.ref_dtype), np.empty((3, 1), dtype=h5py.ref_dtype)
        for i in range(3):
            m = np.zeros((30, 34), np.uint8)
            m[5:20, 8:25] = 1
            ir[i, 0] = refs.create_dataset(f'img{i}', data=rng.integers(0, 256, (30, 34, 3), dtype=np.uint8).transpose(2, 1, 0)).ref
            mref = refs.create_dataset(f'gt{i}', data=m.T).ref
            gr[i, 0] = refs.create_dataset(f'cell{i}', data=np.array([[mref]], dtype=h5py.ref_dtype)).ref
        f.create_dataset('value/img', data=ir)
        f.create_dataset('value/gt', data=gr)


def _imagenet(root, rng, wnids=('n01440764', 'n01443537', 'n01484850')):
    "torchvision's ImageNet layout: train/ and val/ of wnid folders, and meta.bin."
    for j, w in enumerate(wnids):
        for k in range(3):
            _png(root / 'train' / w / f'{w}_{k}.JPEG', rng.integers(0, 256, (36, 40, 3), dtype=np.uint8))
        for k in range(2):
            _png(root / 'val' / w / f'ILSVRC2012_val_{2 * j + k + 1:08d}.JPEG', rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    torch.save(({w: (f'class {w}',) for w in wnids}, [w for w in wnids for _ in range(2)]), root / 'meta.bin')


def _coco(root, rng, n=4):
    ims = [{'id': i + 1, 'file_name': f'{i + 1:012d}.jpg', 'height': 32, 'width': 32} for i in range(n)]
    for im in ims:
        _png(root / 'val2017' / im['file_name'], rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    caps = [{'id': 10 * i + j, 'image_id': i + 1, 'caption': WORDS[(i + j) % 5]} for i in range(n) for j in range(5)]
    rle = {'counts': [32 * 8, 32 * 8, 32 * 16], 'size': [32, 32]}
    inst = [{'id': 1, 'image_id': 1, 'category_id': 1, 'iscrowd': 0, 'area': 256.0, 'bbox': [8, 8, 16, 16],
             'segmentation': [[8, 8, 24, 8, 24, 24, 8, 24]]},
            {'id': 2, 'image_id': 2, 'category_id': 1, 'iscrowd': 1, 'area': 256.0, 'bbox': [8, 0, 8, 32], 'segmentation': rle}]
    (root / 'annotations').mkdir()
    (root / 'annotations' / 'captions_val2017.json').write_text(json.dumps({'images': ims, 'annotations': caps}))
    (root / 'annotations' / 'instances_val2017.json').write_text(
        json.dumps({'images': ims, 'annotations': inst, 'categories': [{'id': 1, 'name': 'circle'}]}))


def _captioner(root):
    "A tiny random LM folder, image encoder and projection (`--zoo root --encoder tiny`), and a tiny BERT for BERTScore."
    from transformers import BertConfig, BertModel, BertTokenizerFast
    from neuronlens.limber.captioner import TOY_WORDS, ImageProjection, tiny_encoder, tiny_lm
    from neuronlens.limber.projection import save_projection
    from neuronlens.models.zoo import save_zoo_model
    lm, enc = tiny_lm(), tiny_encoder()
    lm.model.save_pretrained(root / 'tiny-lm')
    lm.tokenizer.save_pretrained(root / 'tiny-lm')
    save_zoo_model(enc.model, 'tiny-vit', root=root)
    torch.manual_seed(1)
    meta = dict(encoder=str(root / 'tiny-vit.safetensors'), lm=str(root / 'tiny-lm'))
    save_projection(ImageProjection(enc.d_out, lm.d_model, 4, enc.grid), 'projection-tiny', meta, root)
    bert = root / 'bert'
    bert.mkdir()
    vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', *sorted(set(TOY_WORDS) | {w for s in WORDS for w in s.split()})]
    (bert / 'vocab.txt').write_text('\n'.join(vocab) + '\n')
    BertTokenizerFast(vocab_file=str(bert / 'vocab.txt')).save_pretrained(bert)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)


@pytest.fixture(scope='module')
def fx(tmp_path_factory):
    "Every tiny model and dataset the commands read, in their exact formats, and a folder of the user's."
    root = tmp_path_factory.mktemp('real')
    rng = np.random.default_rng(0)
    _tiny_clip(root / 'tiny-clip')
    _cifar10(root / 'cifar', rng)
    _gtsegs(root / 'gtsegs.mat', rng)
    _coco(root / 'coco', rng)
    _imagenet(root / 'imagenet', rng)
    _captioner(root / 'zoo')
    (root / 'names10.txt').write_text('\n'.join(NAMES) + '\n')
    (root / 'three.txt').write_text('dog\ncat\ncar\n')
    (root / 'words.txt').write_text('beach\nsnow\nlamp\ntree\nsky\ncats\nred\nblue\n')
    (root / 'gen.py').write_text('import numpy as np\n\n\ndef draw(texts):\n'
                                 '    return np.stack([np.full((32, 32, 3), sum(map(ord, t)) % 256, np.uint8) for t in texts])\n')
    (root / 'notmat.mat').write_text('not a MATLAB file')
    _png(root / 'flat' / 'a.png', rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (root / 'hf-empty').mkdir()
    return root


def run(fx, *args):
    "`neuronlens ARGS` in a subprocess: offline, with an empty Hugging Face cache."
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
           'HF_HOME': str(fx / 'hf-empty'), 'NEURONLENS_CACHE': str(fx / 'nl-cache')}
    return subprocess.run([str(BIN / 'neuronlens'), *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT)


def clip_args(fx):
    return ['--model', f"local-dir:{fx / 'tiny-clip'}"]


def ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


# ---------------------------------------------------------------- happy paths, one per new command


def test_apply_ablate_and_segment_on_datasets(fx, tmp_path):
    c = [*clip_args(fx), '--layers', '1', '--k-top', '3', '--cache', tmp_path / 'cache', '--out', tmp_path / 'out']
    ok(run(fx, 'apply', 'ablate', *c, '--images', f"cifar10:{fx / 'cifar'}"))
    ab = json.loads((tmp_path / 'out' / 'ablate.json').read_text())
    assert ab['n_images'] == 6 and ab['layers'] == [1]
    assert [r['condition'] for r in ab['rows']][:3] == ['clean', 'baseline', 'mean-ablate layer']
    ok(run(fx, 'apply', 'segment', *c, '--images', f"imagenet-seg:{fx / 'gtsegs.mat'}", '--reference', f"cifar10:{fx / 'cifar'}?split=train",
           '--classes', fx / 'names10.txt', '--top-k', '8'))
    sg = json.loads((tmp_path / 'out' / 'segment.json').read_text())
    assert sg['n_scenes'] == 3 and all(0 <= r['miou'] <= 1 for r in sg['rows'])


def test_apply_adversarial_and_attributes_on_a_real_clip(fx, tmp_path):
    c = [*clip_args(fx), '--images', 'toy:valid', '--n-images', '16', '--classes', fx / 'three.txt', '--dictionary', fx / 'words.txt',
         '--cache', tmp_path / 'cache', '--out', tmp_path / 'out']
    ok(run(fx, 'apply', 'adversarial', *c, '--generator', f"{fx / 'gen.py'}:draw", '--writer', 'template', '--margin', '-1',
           '--n-pairs', '1', '--n-desc', '2'))
    adv = json.loads((tmp_path / 'out' / 'adversarial.json').read_text())
    assert [(p['c0'], p['c1']) for p in adv['pairs']] == [('dog', 'cat')]
    ok(run(fx, 'apply', 'attributes', *c))
    assert sorted(json.loads((tmp_path / 'out' / 'attributes.json').read_text())['words']) == ['car', 'cat', 'dog']


def test_reproduce_second_order(fx, tmp_path):
    r = ok(run(fx, 'reproduce', 'second-order', *clip_args(fx), '--cifar10', fx / 'cifar', '--imagenet', fx / 'imagenet',
               '--every', '1', '--val-every', '1', '--layer', '1', '--seg-layers', '0', '1', '--k-top', '3', '--k-words', '3',
               '--dictionary', fx / 'words.txt', '--shard-size', '5', '--margin', '-1', '--device', 'cpu', '--out', tmp_path / 'out'))
    assert json.loads(r.stdout)['tables'] == ['ablation', 'decomposition', 'directions', 'significance'], r.stderr
    assert '[7/8] segmentation: skipped (needs --imagenet-seg)' in r.stderr, r.stderr
    assert (tmp_path / 'out' / 'tables.md').is_file()


def test_neurons_on_coco_with_the_paper_eval(fx, tmp_path):
    ok(run(fx, 'neurons', '--encoder', 'tiny', '--zoo', fx / 'zoo', '--images', f"coco:{fx / 'coco'}", '--n-images', '4', '--top-k', '8',
           '--batch-size', '2', '--n-boot', '50', '--ablation-ks', '0,8', '--bert-model', fx / 'zoo' / 'bert', '--no-progress',
           '--cache', tmp_path / 'cache', '--out', tmp_path / 'out'))
    pe = json.loads((tmp_path / 'out' / 'summary.json').read_text())['paper_eval']
    assert pe['n_images'] == 4 and {'Table 1', 'Table 2', 'IoU', 'Ablation'} <= {r['table'] for r in pe['rows']}


def test_reproduce_multimodal(fx, tmp_path):
    z = fx / 'zoo'
    r = ok(run(fx, 'reproduce', 'multimodal', '--encoder', z / 'tiny-vit.safetensors', '--lm', z / 'tiny-lm',
               '--projection', z / 'projection-tiny.safetensors', '--coco', fx / 'coco', '--top-k', '8', '--batch-size', '2',
               '--shard-size', '2', '--device', 'cpu', '--no-progress', '--bert-model', z / 'bert', '--n-boot', '50',
               '--ablation-ks', '0,8', '--out', tmp_path / 'out'))
    assert '## Table 1' in r.stdout
    assert json.loads((tmp_path / 'out' / 'tables.json').read_text())['evaluated'] is True


def test_atlas_all_of_a_real_run(fx, tmp_path):
    src = ['--images', 'toy:valid', '--n-images', '16']
    r = ok(run(fx, 'second-order', *clip_args(fx), '--layer', '1', *src, '--shard-size', '8', '--k-top', '3', '--device', 'cpu',
               '--cache', tmp_path / 'cache'))
    key = json.loads(r.stdout[r.stdout.index('{'):])['run']
    ok(run(fx, 'atlas', '--all', '--run', key, *clip_args(fx), *src, '--dictionary', fx / 'words.txt', '--cache', tmp_path / 'cache',
           '--out', tmp_path / 'atlas'))
    assert len(list((tmp_path / 'atlas' / 'thumbs').glob('*.webp'))) == 128  # every neuron of the tiny layer (d_mlp 128)


# ---------------------------------------------------------------- bad input: one line, exit 1 or 2, nothing written


def _bad(fx, out):
    "(args, part of the message) of each wrong invocation; `out` is a folder that must stay absent."
    c = [*clip_args(fx), '--cache', out / 'cache', '--out', out]
    cifar = f"cifar10:{fx / 'cifar'}"
    return {
        'apply-missing-dataset': (['apply', 'ablate', *c, '--images', f"cifar10:{fx / 'nowhere'}"], 'lacks test_batch'),
        'apply-wrong-layout': (['apply', 'ablate', *c, '--images', f"imagenet:{fx / 'flat'}"], 'has no val/ folder'),
        'apply-class-count': (['apply', 'ablate', *c, '--images', cifar, '--classes', fx / 'three.txt'],
                              'has 3 class names but the classifier has 10 classes'),
        'apply-missing-class-file': (['apply', 'ablate', *c, '--images', cifar, '--classes', fx / 'nope.txt'], 'does not exist'),
        'apply-unknown-model': (['apply', 'ablate', '--model', 'ViT-Nope-99', '--pretrained', 'x', '--images', cifar, '--out', out],
                                "unknown open_clip model 'ViT-Nope-99'"),
        'apply-offline-tag': (['apply', 'ablate', '--model', 'ViT-B-32', '--pretrained', 'openai', '--images', cifar, '--out', out],
                              'hf download timm/vit_base_patch32_clip_224.openai'),
        'apply-offline-hub': (['apply', 'attributes', '--model', 'hf-hub:nobody/no-clip', '--images', 'toy:valid', '--out', out],
                              'hf download nobody/no-clip'),
        'apply-not-mat': (['apply', 'segment', *c, '--images', f"imagenet-seg:{fx / 'notmat.mat'}"], 'is not a MATLAB v7.3'),
        'apply-missing-generator': (['apply', 'adversarial', *c, '--images', 'toy:valid', '--classes', fx / 'three.txt',
                                     '--generator', f"{fx / 'nope.py'}:draw", '--writer', 'template'], 'not found'),
        'so-missing-dataset': (['reproduce', 'second-order', *clip_args(fx), '--imagenet', fx / 'nowhere', '--out', out], 'does not exist'),
        'so-wrong-layout': (['reproduce', 'second-order', *clip_args(fx), '--layer', '1', '--seg-layers', '0', '1',
                             '--imagenet', fx / 'flat', '--out', out], 'has no train/ folder'),
        'so-user-folder': (['reproduce', 'second-order', *clip_args(fx), '--cifar10', fx / 'cifar', '--out', fx / 'mine'],
                           'holds something else'),
        'so-offline-tag': (['reproduce', 'second-order', '--model', 'ViT-B-32', '--pretrained', 'openai', '--cifar10', fx / 'cifar',
                            '--out', out], 'not in the Hugging Face cache'),
        'mm-missing-coco': (['reproduce', 'multimodal', '--encoder', 'x', '--lm', 'x', '--coco', fx / 'nowhere', '--no-eval',
                             '--projection', fx / 'zoo' / 'projection-tiny.safetensors',
                             '--out', out], 'captions_val2017.json'),
        'neurons-wrong-layout': (['neurons', '--images', f"coco:{fx / 'flat'}", '--cache', out / 'cache', '--out', out],
                                 'has no annotations/captions_val2017.json'),
        'neurons-user-folder': (['neurons', '--n-images', '2', '--cache', out / 'cache', '--out', fx / 'mine'],
                                'holds summary.json not written by `neuronlens neurons`'),
        'neurons-offline-bert': (['neurons', '--encoder', 'tiny', '--zoo', fx / 'zoo', '--images', f"coco:{fx / 'coco'}",
                                  '--cache', out / 'cache', '--out', out], "hf download FacebookAI/roberta-large"),
        'atlas-missing-run': (['atlas', '--all', '--run', 'nokey', *clip_args(fx), '--cache', out / 'cache', '--out', out],
                              "no second-order run with key 'nokey'"),
        'demo-unknown-projection': (['demo', '--projection', 'projection-nope', '--cache', out / 'cache', '--out', out],
                                    "unknown projection 'projection-nope': accepted are "),
        'atlas-missing-dictionary': (['atlas', '--all', '--run', 'nokey', *clip_args(fx), '--dictionary', fx / 'nope.txt', '--out', out],
                                     'not found'),
    }


BAD = list(_bad(Path('/f'), Path('/o')))


@pytest.mark.parametrize('case', BAD)
def test_bad_input_is_one_line(fx, tmp_path, case):
    mine = fx / 'mine'
    mine.mkdir(exist_ok=True)
    (mine / 'notes.txt').write_text('my notes')
    (mine / 'summary.json').write_text('my summary')
    args, message = _bad(fx, tmp_path / 'out')[case]
    r = run(fx, *args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode in (1, 2) and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert len(lines) == 1 and ': error: ' in lines[0] and message in lines[0], r.stderr[-3000:]
    assert r.stdout == ''
    assert not (tmp_path / 'out').exists()  # refused before anything was written
    assert sorted(p.name for p in mine.iterdir()) == ['notes.txt', 'summary.json'] and (mine / 'summary.json').read_text() == 'my summary'
