"""Toy-world generator throughput: scenes/s with image, masks, per-pixel labels, concept vector and caption.

Measures, at 64 px and 224 px:
  * `sample_scene` in a loop, one process (the reference path: one `Scene` per seed);
  * `sample_batch` (stacked numpy arrays, the training fast path), one process;
  * `sample_batch` in 2 worker processes (multiprocessing pool; scenes made, results kept in the workers);
  * `ToyWorldStream` through `DataLoader(num_workers=2, batch_size=None)`: torch batches (uint8 images) delivered to
    the main process, with masks and labels, and without them (`targets=False`, what contrastive training needs);
  * `ToyWorldDataset` through `DataLoader(num_workers=2, collate_fn=collate_scenes)`: per-item tensors, the map-style path.

Usage: python benchmarks/bench_toyworld.py [--seconds 3] [--out benchmarks/results]
Writes toyworld.json and toyworld.md in --out.
"""
import argparse, datetime, json, multiprocessing as mp, os, platform, resource, sys, time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchcommon import cpu_model
from neuronlens.toy.world import ToyWorldDataset, ToyWorldStream, collate_scenes, sample_batch, sample_scene


def hardware() -> dict:
    "Machine, software versions, load and date for the results file."
    return dict(cpu=cpu_model(), logical_cores=os.cpu_count(),
                usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
                torch_threads=torch.get_num_threads(), python=platform.python_version(), numpy=np.__version__,
                torch=torch.__version__, platform=platform.platform(), load_avg_at_start=list(os.getloadavg()),
                date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'))


def cpu_seconds() -> float:
    "User + system CPU time of this process and of its reaped children (worker processes)."
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(run) -> dict:
    "Run `run()` (returns a scene count); scenes per wall-clock second and per CPU second (all processes)."
    w0, c0 = time.perf_counter(), cpu_seconds()
    n = run()
    wall, cpu = time.perf_counter() - w0, cpu_seconds() - c0
    return dict(scenes=n, wall_s=round(wall, 3), cpu_s=round(cpu, 3), scenes_per_s=round(n / wall, 1),
                scenes_per_cpu_s=round(n / cpu, 1))


def loop_run(size: int, n: int):
    "sample_scene in a loop, one process."
    def run():
        for seed in range(n): sample_scene(seed, size)
        return n
    return run


def batch_run(size: int, n_batches: int, batch: int):
    "sample_batch, one process."
    def run():
        return sum(len(sample_batch(range(b * batch, (b + 1) * batch), size)['caption']) for b in range(n_batches))
    return run


def _worker_batches(args) -> int:
    "Draw `n_batches` batches from `start` in a worker process; returns the scene count."
    start, n_batches, batch, size = args
    for b in range(n_batches): sample_batch(range(start + b * batch, start + (b + 1) * batch), size)
    return n_batches * batch


def pool_run(size: int, n_batches: int, batch: int, workers: int = 2):
    "sample_batch in `workers` forked processes; only the counts come back (worker start-up included)."
    def run():
        pool = mp.get_context('fork').Pool(workers)
        n = sum(pool.map(_worker_batches, [(10**7 * (w + 1), n_batches // workers, batch, size) for w in range(workers)]))
        pool.close(); pool.join()
        return n
    return run


def loader_run(make_loader):
    "Every batch of a fresh DataLoader, delivered to the main process (worker start-up and shutdown included)."
    def run():
        loader = make_loader()
        n = sum(len(b['caption']) for b in loader)
        del loader
        return n
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=3.0, help='time per measurement')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results'), help='folder for toyworld.json/.md')
    args = ap.parse_args()
    torch.set_num_threads(1)
    hw, rows = hardware(), []
    sample_scene(0, 64); sample_scene(0, 224)  # fill the shape caches before forking
    for size in (64, 224):
        bs = 256 if size == 64 else 64
        per = 1 / measure(loop_run(size, 200))['scenes_per_cpu_s']  # CPU s per scene, to size each case to about --seconds
        nb = max(4, int(args.seconds / per / bs))  # batches for one process
        nb2 = 2 * nb  # batches for two
        stream = lambda targets: ToyWorldStream('train', batch_size=bs, n_batches=nb2, size=size, targets=targets)
        ds = ToyWorldDataset('train', n=bs * nb2, size=size)
        cases = [('sample_scene loop', 1, None, loop_run(size, nb * bs)),
                 ('sample_batch', 1, bs, batch_run(size, nb, bs)),
                 ('sample_batch, process pool', 2, bs, pool_run(size, nb2, bs)),
                 ('ToyWorldStream + DataLoader', 2, bs, loader_run(lambda: DataLoader(stream(True), batch_size=None, num_workers=2))),
                 ('ToyWorldStream, no masks/labels', 2, bs, loader_run(lambda: DataLoader(stream(False), batch_size=None, num_workers=2))),
                 ('ToyWorldDataset + DataLoader', 2, bs, loader_run(
                     lambda: DataLoader(ds, batch_size=bs, num_workers=2, collate_fn=collate_scenes)))]
        for name, workers, batch, run in cases:
            r = measure(run)
            rows.append(dict(size=size, path=name, processes=workers, batch=batch, **r))
            print(f"{size:>4} px  {name:<32} x{workers}  {r['scenes_per_s']:8.0f} scenes/s  {r['scenes_per_cpu_s']:8.0f} per CPU-s", file=sys.stderr)
    hw['load_avg_at_end'] = list(os.getloadavg())
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    res = dict(benchmark='toyworld', what='scenes/s with image, masks, per-pixel labels, concept vector and caption',
               target='>= 2000 scenes/s at 64 px on 2 cores', seconds_per_measurement=args.seconds, hardware=hw, results=rows)
    (out / 'toyworld.json').write_text(json.dumps(res, indent=1) + '\n')
    lines = ['# Toy-world generator throughput', '',
             f"{hw['cpu']}, {hw['usable_cores']} cores, Python {hw['python']}, numpy {hw['numpy']}, torch {hw['torch']}, {hw['date']}.",
             f"Load average at start {hw['load_avg_at_start'][0]:.1f}, at end {hw['load_avg_at_end'][0]:.1f}: on a shared machine scenes/s "
             "(wall clock) is a lower bound, and scenes per CPU-second (all processes, workers included) is the cost that does not depend on load.",
             'Each scene: image, instance masks, per-pixel labels, concept vector, caption (the "no masks/labels" row still draws them, '
             'but does not send them to the main process).', '',
             '| size | path | processes | batch | scenes/s | scenes per CPU-s |', '|---:|---|---:|---:|---:|---:|']
    lines += [f"| {r['size']} | {r['path']} | {r['processes']} | {r['batch'] or '-'} | {r['scenes_per_s']:,.0f} | {r['scenes_per_cpu_s']:,.0f} |" for r in rows]
    (out / 'toyworld.md').write_text('\n'.join(lines) + '\n')
    print((out / 'toyworld.md').read_text())


if __name__ == '__main__':
    main()
