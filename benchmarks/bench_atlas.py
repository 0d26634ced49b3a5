"""Build time of the lazy atlas of a whole layer (3,072 neurons of ViT-B-32's MLP) and its index's open time in Chromium.

    .venv/bin/python benchmarks/bench_atlas.py [--quick] [--device cpu|cuda] [--n-images 1000] [--layer 9] [--opens 7]

A random-init open_clip `--model` (default ViT-B-32) runs the second-order lens (`run_second_order`, k_top 16) over
`--n-images` toy scenes at the model's input size (timed apart: it is the run, not the atlas); `layer_of_run`
decomposes every direction over the toy vocabulary (timed apart); `write_layer_atlas` writes the site (timed: the
pass over each neuron's 4 distinct top images for the crops, thumbnails, 3,072 neuron files, index shards, word index).
The site is then served on 127.0.0.1 and opened `--opens` times in headless Chromium (Debian's, as tests/conftest.py
starts it), each time in a fresh browser context (no cache): the time from navigation start until the first page of
the grid is drawn (the page's `data-ready` mark, read with Playwright as `performance.now()` right then) and the
Navigation Timing load event; the median of the opens is reported, the same for a neuron page (all figures drawn).
`--quick`: a tiny random ViT (width 64: 256 neurons), 24 scenes, 3 opens, nothing written unless `--write`.
Results: benchmarks/results/atlas_<device>.json and a row of atlas.md.
"""
import argparse, functools, http.server, json, os, shutil, statistics, sys, tempfile, threading, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchcommon import hardware, add_table_row, sync

RESULTS = Path(__file__).parent / 'results'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def timed(fn):
    t = time.perf_counter(); out = fn(); return time.perf_counter() - t, out


def serve(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_address[1]}'


def open_times(base, unit, opens):
    "Median ms to the index's first grid page and to a neuron page with its figures, each in fresh contexts."
    from playwright.sync_api import sync_playwright
    exe = os.environ.get('NEURONLENS_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    out = {'index_ready_ms': [], 'index_load_event_ms': [], 'neuron_ready_ms': []}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        for _ in range(opens):
            ctx = b.new_context(viewport={'width': 1300, 'height': 900})
            page = ctx.new_page()
            page.goto(f'{base}/index.html')
            page.wait_for_selector('body[data-ready="1"]')
            out['index_ready_ms'].append(page.evaluate('performance.now()'))
            out['index_load_event_ms'].append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
            page.goto(f'{base}/neuron.html?u={unit}')
            page.wait_for_function("() => document.body.dataset.ready === '1' && document.querySelectorAll('svg.main-svg').length >= 2")
            out['neuron_ready_ms'].append(page.evaluate('performance.now()'))
            ctx.close()
        b.close()
    return {k: {'median': round(statistics.median(v), 1), 'max': round(max(v), 1), 'n': len(v)} for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--model', default='ViT-B-32', help='open_clip architecture, random init')
    ap.add_argument('--layer', type=int, default=9)
    ap.add_argument('--n-images', type=int, default=1000)
    ap.add_argument('--opens', type=int, default=7)
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--write', action='store_true', help='with --quick: still write the results')
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from neuronlens.core import TensorCache
    from neuronlens.data.sources import image_source
    from neuronlens.lens.decompose import toy_vocabulary
    from neuronlens.lens.pipeline import run_second_order
    from neuronlens.models.clip import ClipAdapter, load_clip
    from neuronlens.views.layer_atlas import layer_of_run, write_layer_atlas
    device = torch.device(a.device)
    if a.quick:
        from neuronlens.lens.second_order import tiny_clip
        from neuronlens.toy.nets import WordTokenizer
        words = toy_vocabulary()
        clip = ClipAdapter(tiny_clip(width=64, image_size=32, seed=0), WordTokenizer(sorted({t for w in words for t in w.split()}), context_length=8))
        a.model, a.layer, a.n_images, a.opens, size = 'tiny ViT (width 64)', 1, 24, 3, 32
    else:
        clip = load_clip(a.model)
        words = toy_vocabulary()
        size = tuple(clip.preprocess.size)
    clip.model.to(device).eval()
    src = image_source('toy:test', a.n_images, size)
    res = {'hardware': hardware(device), 'settings': {'model': a.model, 'layer': a.layer, 'n_images': a.n_images,
                                                      'words': len(words), 'k_top': 16, 'n_top': 4, 'quick': a.quick}}
    with tempfile.TemporaryDirectory() as tmp:
        t_run, run = timed(lambda: run_second_order(clip, src, a.layer, TensorCache(Path(tmp) / 'cache'), shard_size=256,
                                                    batch_size=32, k_top=16))
        t_dec, L = timed(lambda: layer_of_run(run, src, clip, words, k=8, model=a.model))
        sync(device)
        t_build, idx = timed(lambda: write_layer_atlas(L, Path(tmp) / 'site', n_top=4))
        site = idx.parent
        files = [p for p in site.rglob('*') if p.is_file()]
        at_open = sum((site / p).stat().st_size for p in ('index.html', 'atlas-data/meta.js', 'atlas-data/rows-000.js'))
        res['neurons'] = L.d_mlp
        res['seconds'] = {'second-order run (not the atlas)': round(t_run, 2), 'decompositions (layer_of_run)': round(t_dec, 2),
                          'write_layer_atlas': round(t_build, 2)}
        res['site'] = {'files': len(files), 'mib': round(sum(p.stat().st_size for p in files) / 2**20, 1),
                       'index_html_kib': round((site / 'index.html').stat().st_size / 1024, 1),
                       'loaded_at_open_kib (index, meta, first shard; thumbnails apart)': round(at_open / 1024, 1)}
        srv, base = serve(site)
        try:
            res['open_ms'] = open_times(base, int(L.significant[0]), a.opens)
        finally:
            srv.shutdown(); srv.server_close()
    print(json.dumps(res, indent=1))
    if a.quick and not a.write:
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f'atlas_{device.type}.json').write_text(json.dumps(res, indent=1))
    hw = res['hardware']
    mach = f"{hw['cpu'][:40]} ({hw['usable_cores']} cores, {hw['torch_threads']} threads, load {hw['load_avg_at_start'][0]})" + (f", {hw['gpu']}" if 'gpu' in hw else '')
    header = ("# Atlas of a whole layer: build time and open time in Chromium\n\n"
              "| date | machine | device | model, layer | neurons | images | build (s) | site (MiB) | index open, median (ms) | neuron page, median (ms) |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n")
    add_table_row(RESULTS / 'atlas.md', f"| {hw['date'][:16]} | {mach} | {hw['device']} | {a.model}, {a.layer} | {res['neurons']} | {a.n_images} | "
                  f"{res['seconds']['write_layer_atlas']} | {res['site']['mib']} | {res['open_ms']['index_ready_ms']['median']} | "
                  f"{res['open_ms']['neuron_ready_ms']['median']} |", header)


if __name__ == '__main__':
    main()
