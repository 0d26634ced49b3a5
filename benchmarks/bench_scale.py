"""Scale benchmark (issue #16): `second-order` and `neurons` over 10,000 toy images, and the image sources that feed them.

Each mode runs in its own process, so its peak memory (`benchcommon.PeakMemory`: peak RSS over the timed block on CPU,
peak CUDA tensor memory on a GPU) is its own. Every run goes through the same sharded, cached pipeline as the
commands (`lens_pipeline.run_second_order`, `lens_pipeline.run_multimodal_neurons`) with a fresh cache folder.

- `sources`: 10,000 toy scenes written once as a folder of PNGs, 10 webdataset shards and a saved HF dataset, then
  read back in batches of 256 at the encoder's size: images/s and peak memory (streamed, so flat in n).
- `second-order`: the shipped ToyCLIP, layer 2, on n = 2,500 and 10,000 held-out toy scenes (`toy:test`, rendered on
  the fly) and on the 10,000 read from the webdataset shards; baseline in the same process: `encode_image` on the
  same batches. Peak memory should not grow with n beyond the per-image norms (n x d_mlp x 8 bytes). The webdataset
  run reads the first quarter of the shards (end to end from tar files; the same pixels as the toy scenes).
- `neurons`: the shipped captioner (toy encoder + SmolLM2-135M), all 30 layers, top 100, batch 16. Too slow for
  10,000 images on 2 shared CPU cores, so a prefix of `--neurons-images` is timed (two prefix lengths, to check that
  memory stays flat and time is linear) and the 10,000-image time is extrapolated linearly (shards are independent).

    .venv/bin/python benchmarks/bench_scale.py                    # CPU: all modes, writes results/scale.json + scale.md
    .venv/bin/python benchmarks/bench_scale.py --device cuda      # GPU rows (same modes)
"""
from __future__ import annotations
import argparse, datetime, io, json, multiprocessing as mp, os, shutil, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np
import torch

from benchcommon import PeakMemory, hardware, sync

RESULTS = HERE / 'results'


def _write_sources(root: Path, n: int, size: int = 64) -> dict:
    "The same n toy scenes as a PNG folder, webdataset shards (1,000 per shard) and a saved HF dataset; returns specs and write times."
    import datasets, webdataset as wds
    from PIL import Image
    from neuronlens.toy.world import sample_batch, split_seeds
    datasets.disable_progress_bars()
    seeds = split_seeds('test', n)
    (root / 'folder').mkdir(parents=True); (root / 'wds').mkdir()
    t0 = time.perf_counter(); pngs = []
    for a in range(0, n, 500):
        b = sample_batch(seeds[a:a + 500], size, targets=False)
        for im in b['image']:
            buf = io.BytesIO(); Image.fromarray(im).save(buf, format='PNG'); pngs.append(buf.getvalue())
    t_render = time.perf_counter() - t0
    for i, p in enumerate(pngs): (root / 'folder' / f'{i:05d}.png').write_bytes(p)
    for s in range(-(-n // 1000)):
        with wds.TarWriter(str(root / 'wds' / f'shard-{s:03d}.tar')) as w:
            for i in range(1000 * s, min(n, 1000 * (s + 1))): w.write({'__key__': f'{i:06d}', 'png': pngs[i]})
    datasets.Dataset.from_dict({'image': [{'bytes': p, 'path': None} for p in pngs]},
                               features=datasets.Features({'image': datasets.Image()})).save_to_disk(str(root / 'hf'))
    last = -(-n // 1000) - 1
    return dict(folder=str(root / 'folder'), wds=f"wds:{root / 'wds'}/shard-{{000..{last:03d}}}.tar", hf=f"hf:{root / 'hf'}", render_s=t_render)


def mode_sources(a, q):
    from neuronlens.data.sources import image_source
    root = Path(tempfile.mkdtemp(prefix='nl-scale-'))
    try:
        specs = _write_sources(root, a.n_images)
        rows = []
        for name in ('folder', 'wds', 'hf'):
            src = image_source(specs[name], size=64)
            with PeakMemory('cpu') as pm:
                t = time.perf_counter()
                for s in range(0, src.n, 256): src.load(s, min(s + 256, src.n))
                secs = time.perf_counter() - t
            rows.append(dict(mode='sources', source=name, images=src.n, seconds=round(secs, 2), images_per_s=round(src.n / secs, 1),
                             peak_rss_mib=pm.rss_mib, added_rss_mib=pm.added_rss_mib))
        q.put(rows)
    finally: shutil.rmtree(root, ignore_errors=True)


def mode_second_order(a, q):
    from neuronlens.limber import pipeline as lp
    from neuronlens.data.sources import image_source
    from neuronlens.lens.pipeline import run_second_order
    from neuronlens.core import TensorCache
    from neuronlens.models.zoo import load_model
    dev = torch.device(a.device)
    clip = load_model('toyclip'); clip.model.to(dev)
    rows, root = [], Path(tempfile.mkdtemp(prefix='nl-scale-'))
    try:
        specs = {'toy': 'toy:test'}
        if not a.skip_wds: specs['wds'] = _write_sources(root / 'data', a.n_images)['wds']
        runs = [('toy', max(a.n_images // 4, 1)), ('toy', a.n_images)] + ([('wds', max(a.n_images // 4, 1))] if 'wds' in specs else [])
        for name, n in runs:
            src = image_source(specs[name], n, 64)
            # baseline: encode_image on the same images and batches (loading and preprocessing included, as in the run)
            with torch.no_grad():
                sync(dev); t = time.perf_counter()
                for s in range(0, min(n, 2048), a.batch_size):
                    clip.encode_image(clip.preprocess(torch.from_numpy(src.load(s, min(s + a.batch_size, n))).permute(0, 3, 1, 2)).to(dev))
                sync(dev); enc_ips = min(n, 2048) / (time.perf_counter() - t)
            cache = TensorCache(root / f'cache-{name}-{n}')
            with PeakMemory(dev) as pm:
                sync(dev); t = time.perf_counter()
                run = run_second_order(clip, src, a.layer, cache, shard_size=256, batch_size=a.batch_size, k_top=100)
                sync(dev); secs = time.perf_counter() - t
            rows.append(dict(mode='second-order', source=name, images=n, layer=a.layer, d_mlp=int(run.effects.norms.shape[1]), shard_size=256,
                             batch=a.batch_size, seconds=round(secs, 1), images_per_s=round(n / secs, 1), encode_image_per_s=round(enc_ips, 1),
                             vs_encode_image=round(n / secs / enc_ips, 2), peak_rss_mib=pm.rss_mib, added_rss_mib=pm.added_rss_mib, peak_cuda_mib=pm.cuda_mib,
                             norms_mib=round(2 * n * run.effects.norms.shape[1] * 4 / 2**20, 1)))
        q.put(rows)
    finally: shutil.rmtree(root, ignore_errors=True)


def mode_neurons(a, q):
    from neuronlens.limber import pipeline as lp
    from neuronlens.data.sources import image_source
    from neuronlens.lens.pipeline import run_second_order
    from neuronlens.core import TensorCache
    from neuronlens.limber.projection import load_captioner
    dev = torch.device(a.device)
    cap = load_captioner('toy-encoder').to(dev)
    src = image_source('toy:test', a.n_images, 64)
    rows, root = [], Path(tempfile.mkdtemp(prefix='nl-scale-'))
    try:
        for n in (a.neurons_images // 2, a.neurons_images):
            cache, shards = TensorCache(root / f'c{n}'), -(-n // a.neurons_shard)
            with PeakMemory(dev) as pm:
                sync(dev); t = time.perf_counter()
                lp.run_multimodal_neurons(cap, src, cache, shard_size=a.neurons_shard, batch_size=16, top_k=100, max_shards=shards)
                sync(dev); secs = time.perf_counter() - t
            ips = n / secs
            rows.append(dict(mode='neurons', source='toy', images=n, of_images=a.n_images, layers=cap.lm.n_layers, top_k=100, batch=16,
                             shard_size=a.neurons_shard, seconds=round(secs, 1), images_per_s=round(ips, 3),
                             extrapolated_s_for_all=round(a.n_images / ips), extrapolated_h_for_all=round(a.n_images / ips / 3600, 2),
                             peak_rss_mib=pm.rss_mib, added_rss_mib=pm.added_rss_mib, peak_cuda_mib=pm.cuda_mib,
                             note=f'timed on the first {n} of {a.n_images} images (whole shards), extrapolated linearly'))
        q.put(rows)
    finally: shutil.rmtree(root, ignore_errors=True)


MODES = {'sources': mode_sources, 'second-order': mode_second_order, 'neurons': mode_neurons}


def _in_process(mode, a):
    ctx = mp.get_context('spawn'); q = ctx.Queue()
    p = ctx.Process(target=_child, args=(mode, a, q)); p.start()
    out = q.get(); p.join()
    if isinstance(out, str): raise RuntimeError(f'{mode} failed:\n{out}')
    return out


def _child(mode, a, q):
    import traceback
    if a.threads: torch.set_num_threads(a.threads)
    try: MODES[mode](a, q)
    except Exception: q.put(traceback.format_exc())


def write(res: dict, out: Path):
    "Merge this run's rows into `out` (rows of the same device, mode, source and size replaced) and rewrite the markdown beside it."
    old = json.loads(out.read_text()) if out.exists() else {'runs': []}
    key = lambda r: (r['device_name'], r['mode'], r.get('source'), r['images'])
    rows = [r for r in old.get('runs', []) if key(r) not in {key(x) for x in res['runs']}] + res['runs']
    out.write_text(json.dumps({'runs': rows, 'hardware': {**old.get('hardware', {}), res['hardware']['device']: res['hardware']}}, indent=1) + '\n')
    lines = ['# Scale: `second-order` and `neurons` over 10,000 toy images, and the image sources', '',
             'Written by `benchmarks/bench_scale.py` (see its docstring for what each row times). Peak memory: '
             '`benchcommon.PeakMemory` (peak RSS of the mode\'s own process over the timed block; CUDA tensor peak on a GPU).', '',
             '| device | mode | source | images | s | images/s | baseline | peak RSS (MiB) | added (MiB) | note |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        base = f"{r['vs_encode_image']}x encode_image ({r['encode_image_per_s']}/s)" if 'vs_encode_image' in r else ''
        note = f"extrapolated to {r['of_images']:,}: {r['extrapolated_h_for_all']} h" if r['mode'] == 'neurons' else (f"norms {r['norms_mib']} MiB" if 'norms_mib' in r else '')
        lines.append(f"| {r['device_name']} | {r['mode']} | {r.get('source', '')} | {r['images']:,} | {r['seconds']} | {r['images_per_s']} | {base} | "
                     f"{r.get('peak_cuda_mib') or r['peak_rss_mib']} | {r['added_rss_mib']} | {note} |")
    lines += [''] + [f"- {d}: {h.get('cpu')} ({h.get('usable_cores')} cores, torch {h.get('torch_threads')} threads, CPU capability "
                     f"{h.get('cpu_capability')}, native bf16 {h.get('cpu_bf16_native')}), torch {h.get('torch')}, load average at start "
                     f"{h.get('load_avg_at_start')}, {h.get('date')}" + (f", GPU {h['gpu']}" if 'gpu' in h else '')
                     for d, h in json.loads(out.read_text())['hardware'].items()]
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu'); p.add_argument('--threads', type=int, default=None)
    p.add_argument('--n-images', type=int, default=10_000); p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--layer', type=int, default=2, help='ToyCLIP MLP layer for second-order (default: 2)')
    p.add_argument('--neurons-images', type=int, default=128, help='images timed for neurons (and half as many), extrapolated to --n-images')
    p.add_argument('--neurons-shard', type=int, default=32)
    p.add_argument('--modes', default='sources,second-order,neurons')
    p.add_argument('--skip-wds', action='store_true', help='second-order on toy scenes only')
    p.add_argument('--out', type=Path, default=RESULTS / 'scale.json')
    a = p.parse_args(argv)
    dev = torch.device(a.device)
    hw = hardware(dev)
    name = hw.get('gpu') or hw['cpu']
    runs = []
    for mode in a.modes.split(','):
        t = time.perf_counter()
        for r in _in_process(mode, a):
            runs.append({'device_name': name, 'device': a.device, 'date': datetime.datetime.now().isoformat(timespec='seconds'), **r})
            print(json.dumps(runs[-1]), flush=True)
        print(f'{mode}: {time.perf_counter() - t:.0f} s', file=sys.stderr, flush=True)
    write({'runs': runs, 'hardware': {**hw, 'device': a.device}}, a.out)


if __name__ == '__main__':
    main()
