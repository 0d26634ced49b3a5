"""Killed runs lose nothing: `neurons`, `second-order` and `train projection` are killed mid-run (SIGTERM, then SIGKILL
on the resumed run) and the third run, resuming, ends with the same result as an uninterrupted run of the same command.

Each test runs the uninterrupted reference in a fresh cache alongside the kill chain, on tiny settings."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT

EXE = Path(sys.executable).parent / 'neuronlens'


def _env(tmp):
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
            'NEURONLENS_CACHE': str(tmp / 'default-cache')}


def _start(args, tmp, log):
    proc = subprocess.Popen([str(EXE), *args], stdout=open(log, 'w'), stderr=subprocess.STDOUT, cwd=ROOT, env=_env(tmp))
    proc.log = Path(log)
    return proc


def _kill_when(proc, ready, sig, timeout=900):
    "Send `sig` to `proc` as soon as `ready()` is true; fail if the run ends first (then the test would prove nothing)."
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before it could be killed mid-run: {proc.log.read_text()[-2000:]}"
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f'timed out waiting for the run to make progress: {proc.log.read_text()[-2000:]}')
        time.sleep(0.02)
    proc.send_signal(sig)
    rc = proc.wait(60)
    assert rc != 0, 'the killed run exited cleanly'
    return rc


def _finish(proc, log, timeout=600):
    rc = proc.wait(timeout)
    assert rc == 0, Path(log).read_text()[-3000:]


def _entries(cache, name):
    return sorted(p for p in Path(cache).glob(f'{name}-*') if not p.name.startswith('.'))


def _mtimes(paths):
    return {p.name: (p / 'meta.json').stat().st_mtime_ns for p in paths}


def _chain(args_for, tmp, entry, n_total, load):
    "Reference run alongside: run 1 killed by SIGTERM after its first entry, run 2 by SIGKILL after one more, run 3 finishes."
    ref = _start(args_for(tmp / 'ref'), tmp, tmp / 'ref.log')
    work = tmp / 'work'
    p1 = _start(args_for(work), tmp, tmp / 'run1.log')
    _kill_when(p1, lambda: len(_entries(work, entry)) >= 1, signal.SIGTERM)
    kept = _entries(work, entry)
    assert 1 <= len(kept) < n_total, kept
    p2 = _start(args_for(work), tmp, tmp / 'run2.log')
    _kill_when(p2, lambda: len(_entries(work, entry)) > len(kept), signal.SIGKILL)
    after_kill = _entries(work, entry)
    assert len(after_kill) < n_total, 'run 2 finished every shard before it was killed'
    p3 = _start(args_for(work), tmp, tmp / 'run3.log')
    _finish(p3, tmp / 'run3.log')
    _finish(ref, tmp / 'ref.log')
    before = _mtimes(after_kill)
    assert {k: v for k, v in _mtimes(_entries(work, entry)).items() if k in before} == before, 'finished shards were recomputed'
    assert len(_entries(work, entry)) == n_total
    return load(tmp / 'ref'), load(work)


def test_second_order_killed_twice_resumes_to_the_same_run(tmp_path):
    def args_for(d):
        return ['second-order', '--model', 'toyclip', '--layer', '2', '--n-images', '384', '--shard-size', '32', '--batch-size', '32',
                '--k-top', '8', '--cache', str(d / 'cache'), '--device', 'cpu']
    def load(d):
        from neuronlens.core import TensorCache
        run, = _entries(d / 'cache', 'so-run')
        return TensorCache(d / 'cache').load('so-run', run.name.split('-', 2)[2])[0]
    ref, got = _chain(args_for, tmp_path, 'cache/so-shard', 12, load)
    assert torch.allclose(ref['norms'], got['norms'], rtol=1e-4, atol=1e-6)
    assert torch.equal(ref['top_idx'], got['top_idx'])
    cos = torch.nn.functional.cosine_similarity(ref['directions'].float(), got['directions'].float(), dim=-1)
    assert cos.min() > 0.9999, cos.min()


def test_neurons_killed_twice_resumes_to_the_same_units(tmp_path):
    def args_for(d):
        return ['neurons', '--n-images', '8', '--shard-size', '2', '--batch-size', '2', '--top-k', '8', '--layers', '10,20,29',
                '--no-score', '--no-progress', '--device', 'cpu', '--out', str(d / 'out'), '--cache', str(d / 'cache')]
    def load(d):
        return [json.loads(l) for l in (d / 'out' / 'units.jsonl').read_text().splitlines()]
    ref, got = _chain(args_for, tmp_path, 'cache/mm-shard', 4, load)
    assert [r['caption'] for r in ref] == [r['caption'] for r in got]
    assert [[(u['layer'], u['unit']) for u in r['units']] for r in ref] == [[(u['layer'], u['unit']) for u in r['units']] for r in got]
    for a, b in zip(ref, got):
        for u, v in zip(a['units'], b['units']):
            assert u['score'] == pytest.approx(v['score'], rel=1e-4, abs=1e-6)


@pytest.fixture(scope='module')
def tiny_lm_dir(tmp_path_factory):
    from neuronlens.limber.captioner import tiny_lm
    d = tmp_path_factory.mktemp('tiny-lm')
    lm = tiny_lm(0)
    lm.model.save_pretrained(d)
    lm.tokenizer.save_pretrained(d)
    return d


def test_train_projection_killed_twice_resumes_to_the_same_weights(tmp_path, tiny_lm_dir):
    steps = 150
    def args_for(d):
        return ['train', 'projection', '--encoder', 'random-toy-encoder', '--lm', str(tiny_lm_dir), '--steps', str(steps), '--batch-size', '4',
                '--n-train', '16', '--n-tokens', '4', '--warmup', '5', '--ckpt-every', '1', '--n-eval', '0', '--device', 'cpu',
                '--no-progress', '--out', str(d / 'run'), '--cache', str(d / 'cache')]
    def step(d):
        ck = d / 'run' / 'checkpoint.pt'
        try: return torch.load(ck, weights_only=True)['step'] if ck.exists() else 0
        except Exception: return 0  # being replaced right now
    ref = _start(args_for(tmp_path / 'ref'), tmp_path, tmp_path / 'ref.log')
    work = tmp_path / 'work'
    p1 = _start(args_for(work), tmp_path, tmp_path / 'run1.log')
    _kill_when(p1, lambda: step(work) >= 2, signal.SIGTERM)
    s1 = step(work)
    p2 = _start(args_for(work), tmp_path, tmp_path / 'run2.log')
    _kill_when(p2, lambda: step(work) > s1 + 2, signal.SIGKILL)
    s2 = step(work)
    assert 0 < s1 < s2 < steps, (s1, s2)
    p3 = _start(args_for(work), tmp_path, tmp_path / 'run3.log')
    _finish(p3, tmp_path / 'run3.log')
    _finish(ref, tmp_path / 'ref.log')
    a, b = (torch.load(d / 'run' / 'checkpoint.pt', weights_only=True) for d in (tmp_path / 'ref', work))
    assert a['step'] == b['step'] == steps
    for k in a['projection']:
        assert torch.allclose(a['projection'][k], b['projection'][k], rtol=1e-5, atol=1e-6), k
    log = [json.loads(l) for l in (work / 'run' / 'metrics.jsonl').read_text().splitlines() if l.strip()]
    got = [r['step'] for r in log if 'loss' in r]
    assert got == sorted(set(got)), f"the resumed log repeats or skips steps: {got}"  # records after the checkpoint were dropped
