"""Smoke tests of the installed command line and of packaging."""
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT

EXE = Path(sys.executable).parent / 'neuronlens'


def _run(*args, **kw):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, cwd=kw.pop('cwd', ROOT), **kw)


def test_help_lists_subcommands():
    res = _run('--help')
    assert res.returncode == 0 and 'demo' in res.stdout, res.stdout + res.stderr


def test_unknown_subcommand_and_bad_option_exit_2():
    for args in (['frobnicate'], ['demo', '--no-such-option'], ['demo', '--n-scenes', 'x']):
        res = _run(*args)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        assert 'usage: neuronlens' in res.stderr


def test_wheel_builds_with_entry_point_and_zoo(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', str(ROOT), '-w', str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    whl, = tmp_path.glob('neuronlens-*.whl')
    names = zipfile.ZipFile(whl).namelist()
    assert 'neuronlens/core.py' in names and 'neuronlens/app/cli.py' in names
    ep = next(n for n in names if n.endswith('entry_points.txt'))
    assert 'neuronlens = neuronlens.app.cli:main' in zipfile.ZipFile(whl).read(ep).decode()
    shipped = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / 'neuronlens' / 'zoo').glob('*.safetensors'))
    missing = [s for s in shipped if s not in names]
    assert not missing, f"zoo weights not packaged: {missing}"


def test_neurons_command_on_an_image_folder(tmp_path):
    "`neuronlens neurons` end to end on a folder of PNGs: real SmolLM2 + shipped projection, cached, summary written."
    import json
    import numpy as np
    from PIL import Image
    from neuronlens.toy.world import sample_scene, split_seeds
    imgs = tmp_path / 'photos'; imgs.mkdir()
    for i, s in enumerate(split_seeds('test', 3, 900)): Image.fromarray(sample_scene(s, 96).image).save(imgs / f'scene{i}.png')
    args = ['neurons', '--images', str(imgs), '--n-images', '3', '--top-k', '8', '--layers', '10,20,29', '--out', str(tmp_path / 'out'),
            '--cache', str(tmp_path / 'cache'), '--no-progress']
    res = _run(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['n_images'] == 3 and summary['top_k'] == 8 and summary['layers'] == [10, 20, 29] and summary['cached'] is False
    assert 'toy_scores' not in summary  # a folder has no ground truth to score against
    rows = [json.loads(l) for l in (tmp_path / 'out' / 'units.jsonl').read_text().splitlines()]
    assert len(rows) == 3 and all(r['units'] == [] or r['units'][0]['layer'] in (10, 20, 29) for r in rows)
    again = _run(*args)  # the second run reads the cache
    assert again.returncode == 0 and json.loads((tmp_path / 'out' / 'summary.json').read_text())['cached'] is True
    bad = _run('neurons', '--images', str(imgs), '--layers', '99', '--out', str(tmp_path / 'o2'))
    assert bad.returncode == 1 and 'out of range' in bad.stderr and not (tmp_path / 'o2').exists()


def _stderr_lines(res):
    "stderr's lines, less a plug-in module's one-line notice that its own sub-commands are unavailable."
    return [l for l in res.stderr.splitlines() if l.strip() and not l.startswith('neuronlens: the sub-commands of')]


def test_library_error_is_one_line_and_verbose_shows_the_traceback(tmp_path):
    args = ['second-order', '--model', str(tmp_path / 'nothing.safetensors'), '--layer', '0', '--cache', str(tmp_path / 'c')]
    res = _run(*args)
    assert res.returncode == 1 and 'Traceback' not in res.stderr, res.stderr[-2000:]
    assert _stderr_lines(res) == [l for l in _stderr_lines(res) if l.startswith('neuronlens second-order: error: ')], res.stderr
    assert 'nothing.safetensors' in res.stderr and 'no model' in res.stderr
    loud = _run(*args, '--verbose')  # after the sub-command, as users type it
    assert loud.returncode == 1 and 'Traceback (most recent call last)' in loud.stderr and 'WeightsNotFoundError' in loud.stderr
    assert _stderr_lines(loud)[-1].startswith('neuronlens second-order: error: ')


def test_unexpected_error_is_one_line_with_a_hint(tmp_path):
    (tmp_path / 'bad.json').write_text('{not json')
    (tmp_path / 'bad.safetensors').write_bytes(b'garbage')
    res = _run('second-order', '--model', str(tmp_path / 'bad.safetensors'), '--layer', '0', '--cache', str(tmp_path / 'c'))
    lines = _stderr_lines(res)
    assert res.returncode == 1 and 'Traceback' not in res.stderr, res.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('neuronlens second-order: unexpected JSONDecodeError: ') and '--verbose' in lines[0], lines


def test_unwritable_or_full_cache_is_reported_before_work(tmp_path):
    import os
    (tmp_path / 'file').write_text('x')
    res = _run('demo', '--cache', str(tmp_path / 'file' / 'cache'), '--out', str(tmp_path / 'out'))
    assert res.returncode == 1 and 'cache folder' in res.stderr and 'is a file, not a folder' in res.stderr, res.stderr[-2000:]
    full = _run('demo', '--cache', str(tmp_path / 'cache'), '--out', str(tmp_path / 'out'), env={**os.environ, 'NEURONLENS_MIN_FREE_MB': '1e12'})
    assert full.returncode == 1 and 'MB free' in full.stderr and len(_stderr_lines(full)) == 1, full.stderr[-2000:]
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'cache').exists()  # refused before anything was written


def test_cache_write_failure_leaves_no_partial_entry(tmp_path, monkeypatch):
    "A disk that fills up during a cache write leaves neither a half entry nor a temporary folder."
    import errno
    import pytest
    import torch
    from neuronlens import core as core
    cache = core.TensorCache(tmp_path)
    cache.save('x', 'k0', {'a': torch.ones(3)})
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(core, 'save_file', full)
    with pytest.raises(OSError):
        cache.save('x', 'k1', {'a': torch.ones(3)})
    with pytest.raises(OSError):
        cache.save('x', 'k0', {'a': torch.zeros(3)})  # overwriting an entry: the old one survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ['x-k0']
    assert torch.equal(cache.load('x', 'k0')[0]['a'], torch.ones(3))


TINY_OPEN_CLIP = {'embed_dim': 16, 'vision_cfg': {'image_size': 32, 'layers': 2, 'width': 32, 'head_width': 16, 'patch_size': 8},
                  'text_cfg': {'context_length': 8, 'vocab_size': 49408, 'width': 16, 'heads': 2, 'layers': 1}}


def test_local_open_clip_checkpoint_says_what_was_loaded(tmp_path, caplog):
    "`--pretrained file.safetensors`: no 'initialized randomly' note from open_clip; the weights and what was loaded are reported."
    import json, logging, os
    import open_clip, torch
    from safetensors.torch import save_file
    from neuronlens.models.clip import load_clip
    cfg = tmp_path / 'nl-tiny-clip.json'
    cfg.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(cfg)
    torch.manual_seed(1)
    ref = open_clip.create_model('nl-tiny-clip')
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / 'w.safetensors'))
    caplog.clear()  # open_clip's own note about `ref` above
    with caplog.at_level(logging.INFO):
        a = load_clip('nl-tiny-clip', pretrained=tmp_path / 'w.safetensors')
    assert not [r for r in caplog.records if 'randomly' in r.getMessage()], [r.getMessage() for r in caplog.records]
    assert all(torch.equal(a.model.state_dict()[k], v) for k, v in ref.state_dict().items())
    n = len(ref.state_dict())
    assert a.checkpoint == {'path': str((tmp_path / 'w.safetensors').resolve()), 'tensors': n, 'matched': n}
    assert load_clip('nl-tiny-clip').checkpoint is None
    bad = {k: v for k, v in ref.state_dict().items() if not k.startswith('visual.transformer.resblocks.1.')}
    save_file({k: v.contiguous() for k, v in bad.items()}, str(tmp_path / 'part.safetensors'))
    import pytest
    from neuronlens.core import ConfigError
    with pytest.raises(ConfigError, match='tensors missing'):
        load_clip('nl-tiny-clip', pretrained=tmp_path / 'part.safetensors')
    # the command line: a warning-level run prints what was loaded, and nothing about random weights
    code = ('import sys, open_clip; open_clip.add_model_config(sys.argv[1]); from neuronlens.app.cli import main; '
            'sys.exit(main(sys.argv[2:]))')
    res = subprocess.run([sys.executable, '-c', code, str(cfg), 'second-order', '--model', 'nl-tiny-clip', '--pretrained', str(tmp_path / 'w.safetensors'),
                          '--layer', '0', '--n-images', '4', '--batch-size', '4', '--k-top', '2', '--cache', str(tmp_path / 'c'), '--device', 'cpu'],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'randomly' not in res.stderr and f'all {n} tensors matched' in res.stderr, res.stderr[-3000:]


def test_simulate_command_is_registered_and_checks_its_input(tmp_path):
    res = _run('simulate', '--k-words', '0', '--cache', str(tmp_path / 'c'))
    assert res.returncode == 1 and 'must be positive' in res.stderr and 'Traceback' not in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / 'c').exists()  # refused before any work
