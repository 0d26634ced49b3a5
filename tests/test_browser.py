"""The explorers in a real JupyterLab and the neuron atlas in a real browser (headless Chromium via Playwright).

- JupyterLab starts on 127.0.0.1 with a temporary root and token; a notebook there builds a second-order
  explorer on a tiny random CLIP; Chromium runs it, types another neuron into the explorer's neuron box, and the
  histogram drawn in the page must change to that neuron. Screenshot: `artifacts/explorer_jupyterlab.png`.
  Only the prebuilt extensions that come with ipywidgets and anywidget are installed: no plotly extension.
- An atlas of the same layer, with a tiny random captioner's multimodal atlas under `captioner/` (as
  `neuronlens atlas --captioner` writes it), is served on 127.0.0.1 and every page must load with no console
  error, no failed request, no request outside 127.0.0.1, every figure drawn, and the index search must filter by word.

Needs Debian's Chromium (as tests/test_docs.py): skipped without it, a failure when CI is set.
"""
import collections
import json
import os
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest

from conftest import ROOT  # the `browser` fixture (Debian chromium + Playwright) is in conftest too

ARTIFACTS = ROOT / 'artifacts'

SETUP = """import tempfile
from neuronlens.core import TensorCache
from neuronlens.lens.second_order import tiny_clip
from neuronlens.models.clip import ClipAdapter
from neuronlens.toy.nets import WordTokenizer
from neuronlens.lens import pipeline as lp
from neuronlens.data.sources import image_source
from neuronlens.views.records import open_layer
from neuronlens.views.explorers import second_order_explorer
words = ['red', 'green', 'blue', 'yellow', 'circle', 'square', 'star', 'heart', 'small', 'large', 'left', 'right']
clip = ClipAdapter(tiny_clip(image_size=32, seed=0), WordTokenizer(words, context_length=8))
cache = TensorCache(CACHE)
run = lp.run_second_order(clip, image_source('toy:test', 48, 32), 1, cache, shard_size=24, k_top=6)
L = open_layer(cache, lp.save_run(run, cache), clip, words=words, k=4)
"""


def _local_only(context, external):
    def route(r):
        u = urlsplit(r.request.url)
        if u.scheme in ('data', 'blob', 'about') or u.hostname == '127.0.0.1': r.continue_()
        else: external.append(r.request.url); r.abort()
    context.route('**/*', route)


def _watch(page, issues):
    page.on('console', lambda m: m.type == 'error' and issues['console'].append(m.text))
    page.on('pageerror', lambda e: issues['pageerror'].append(str(e)))
    page.on('requestfailed', lambda r: issues['requestfailed'].append(f"{r.url} ({r.failure})"))


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "JupyterLab on 127.0.0.1 with a temporary root, config, data and token; a notebook that builds an explorer."
    from neuronlens.views.explorers import start_lab, wait_for_lab
    root = tmp_path_factory.mktemp('lab')
    cache = root / 'cache'
    cells = [SETUP.replace('CACHE', repr(str(cache))), 'ex = second_order_explorer(L)\nex']
    nb = {'cells': [{'cell_type': 'code', 'id': f'c{i}', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': s} for i, s in enumerate(cells)],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
    (root / 'explorer.ipynb').write_text(json.dumps(nb))
    env_dirs = {k: str(root / k.lower()) for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_RUNTIME_DIR', 'IPYTHONDIR')}
    old = {k: os.environ.get(k) for k in env_dirs}
    os.environ.update(env_dirs)
    try:
        proc, url = start_lab(root, 'explorer.ipynb', extra=['--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                                                              f'--LabApp.workspaces_dir={root / "workspaces"}', '--ServerApp.terminals_enabled=False'])
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    ok = wait_for_lab(url, proc, timeout=120)
    if not ok:
        proc.terminate()
        pytest.fail(f"JupyterLab did not start: {(proc.stderr.read() or '')[-2000:]}", pytrace=False)
    yield url, root
    proc.terminate()
    try: proc.wait(20)
    except subprocess.TimeoutExpired: proc.kill()


_FIRST_PLOT = "document.querySelector('.jp-OutputArea .js-plotly-plot')"


def _state(page):
    "The explorer's header, its histogram's title and the histogram's drawn marks (the first plotly figure of the output)."
    return page.evaluate(f"""() => {{ const p = {_FIRST_PLOT}; const h = document.querySelector('.jp-OutputArea h3');
        const t = p && p.querySelector('.gtitle'); const m = p && p.querySelector('svg.main-svg');
        return {{header: h ? h.textContent : null, title: t ? t.textContent : null, marks: m ? m.innerHTML : null}}; }}""")


def test_explorer_in_jupyterlab(lab, browser):
    url, root = lab
    context = browser.new_context(viewport={'width': 1400, 'height': 1000})
    external = []; _local_only(context, external)
    page = context.new_page(); issues = collections.defaultdict(list); _watch(page, issues)
    t0 = time.time()
    page.goto(url, wait_until='load', timeout=90_000)
    page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=90_000)
    page.wait_for_function("() => /Idle/.test(document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar')?.textContent || '')", timeout=90_000)
    page.wait_for_timeout(1000)
    page.locator('.jp-Notebook .jp-Cell .jp-InputPrompt').first.click()
    page.keyboard.press('Escape')                       # command mode: Shift+Enter runs a cell and moves on
    page.keyboard.press('Shift+Enter'); page.wait_for_timeout(300); page.keyboard.press('Shift+Enter')
    try: page.wait_for_function("() => document.querySelectorAll('.jp-OutputArea .js-plotly-plot svg.main-svg').length >= 3", timeout=150_000)
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True); page.screenshot(path=str(ARTIFACTS / 'explorer_jupyterlab_failed.png'))
        raise
    page.wait_for_timeout(500)
    before = _state(page)
    n_before = int(before['header'].split('unit ')[1].split()[0])
    n_new = 0 if n_before != 0 else 1
    box = page.locator('.jp-OutputArea .widget-text input[type="number"]').first
    box.fill(str(n_new)); box.press('Enter')
    page.wait_for_function(f"""() => {{ const h = document.querySelector('.jp-OutputArea h3'); const p = {_FIRST_PLOT};
        return h && h.textContent.endsWith('unit {n_new}') && p.querySelector('svg.main-svg').innerHTML !== {json.dumps(before['marks'])}; }}""", timeout=120_000)
    page.wait_for_timeout(500)
    after = _state(page)
    words = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea .js-plotly-plot')][1].querySelectorAll('.ytick text').length ? [...[...document.querySelectorAll('.jp-OutputArea .js-plotly-plot')][1].querySelectorAll('.ytick text')].map(t => t.textContent) : []")
    desc = page.evaluate("() => document.querySelector('.jp-OutputArea h3 + p')?.textContent || ''")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator('.jp-OutputArea .js-plotly-plot').first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / 'explorer_jupyterlab.png'), full_page=False)
    n_figs = page.locator('.jp-OutputArea .js-plotly-plot').count()
    context.close()
    assert after['marks'] != before['marks'], "the histogram did not change in the page"
    assert after['title'] and after['title'].startswith(f'neuron {n_new}:'), f"the histogram's title is {after['title']!r} (before: {before['title']!r})"
    assert n_figs >= 3, f"expected the explorer's 3 figures in the page, found {n_figs}"
    assert words and all(w in desc for w in words), f"the decomposition chart shows {words}, the new neuron's description is {desc!r}"
    assert not issues['pageerror'], issues['pageerror']
    assert not external, f"JupyterLab asked for hosts other than 127.0.0.1: {sorted(set(external))[:10]}"
    assert time.time() - t0 < 240


@pytest.fixture(scope='module')
def atlas_site(tmp_path_factory):
    "An atlas of the tiny layer, served on 127.0.0.1."
    import http.server, functools
    out = tmp_path_factory.mktemp('atlas')
    ns = {}
    exec(SETUP.replace('CACHE', repr(str(out / 'cache'))), ns)
    from neuronlens.views.atlas import write_atlas, export_html, write_multimodal_atlas
    from neuronlens.views.explorers import second_order_explorer
    write_atlas(ns['L'], out / 'site', n_neurons=4)
    import torch
    from neuronlens.limber.captioner import tiny_lm, tiny_encoder, ImageProjection, Captioner
    from neuronlens.limber.neurons import find_multimodal_neurons
    from neuronlens.toy.world import sample_batch, split_seeds
    from neuronlens.views.records import prepare_multimodal
    lm, enc = tiny_lm(), tiny_encoder()
    cap = Captioner(enc, lm, ImageProjection(enc.d_out, lm.d_model, 4, enc.grid))
    imgs = torch.from_numpy(sample_batch(split_seeds('test', 6), 32, targets=False)['image']).permute(0, 3, 1, 2)
    found = find_multimodal_neurons(cap, imgs, captions=['a red circle', 'a blue square', 'a star', 'a heart', 'a large circle', 'a small star'], top_k=12)
    write_multimodal_atlas(prepare_multimodal(cap, imgs, found, n_units=4, ks=(1, 4, 12)), out / 'site' / 'captioner', n_units=4, plotly_src='../plotly.min.js')
    export_html(second_order_explorer(ns['L']), out / 'site' / 'state.html')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out / 'site'))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", out / 'site', ns['L']
    srv.shutdown(); srv.server_close()


def test_atlas_pages_load_cleanly(atlas_site, browser):
    base, site, L = atlas_site
    context = browser.new_context()
    external = []; _local_only(context, external)
    problems = []
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html'))
    for name in pages:
        page = context.new_page(); issues = collections.defaultdict(list); _watch(page, issues)
        page.goto(f'{base}/{name}', wait_until='load')
        n = page.locator('.plotly-graph-div').count()
        if n:
            try: page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('svg.main-svg'))", timeout=20_000)
            except Exception: problems.append(f"{name}: a figure did not draw")
        problems += [f"{name}: {k}: {m}" for k, ms in issues.items() for m in ms]
        page.close()
    # the index's search filters rows by a word of their descriptions
    page = context.new_page()
    word = L.terms[int(L.significant[0])][0][0].split()[0]
    page.goto(f'{base}/index.html?q={word}', wait_until='load')
    shown = page.locator('#neurons tbody tr:not(.nl-hidden)').count(); total = page.locator('#neurons tbody tr').count()
    page.fill('#q', 'nosuchword'); hidden_all = page.locator('#neurons tbody tr:not(.nl-hidden)').count()
    context.close()
    assert len([p for p in pages if '/' not in p]) == 6 and len([p for p in pages if p.startswith('captioner/')]) == 5, pages
    assert not problems, '\n'.join(problems[:20])
    assert not external, external
    assert 0 < shown <= total and hidden_all == 0, (word, shown, total, hidden_all)


@pytest.fixture(scope='module')
def layer_atlas_site(tmp_path_factory):
    "The lazy atlas of every neuron (256) of a tiny random ViT, served on 127.0.0.1."
    import http.server, functools
    from neuronlens.core import TensorCache
    from neuronlens.lens.second_order import tiny_clip
    from neuronlens.models.clip import ClipAdapter
    from neuronlens.toy.nets import WordTokenizer
    from neuronlens.lens.pipeline import run_second_order
    from neuronlens.data.sources import image_source
    from neuronlens.views.layer_atlas import layer_of_run, write_layer_atlas
    out = tmp_path_factory.mktemp('layer-atlas')
    words = ['red', 'green', 'blue', 'yellow', 'circle', 'square', 'star', 'heart', 'small', 'large', 'left', 'right']
    clip = ClipAdapter(tiny_clip(width=64, image_size=32, seed=0), WordTokenizer(words, context_length=8))
    src = image_source('toy:test', 24, 32)
    run = run_second_order(clip, src, 1, TensorCache(out / 'cache'), shard_size=12, k_top=5)
    L = layer_of_run(run, src, clip, words, k=4, model='tiny ViT')
    write_layer_atlas(L, out / 'site', n_top=3, per_page=60, shard=100)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out / 'site'))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", out / 'site', L
    srv.shutdown(); srv.server_close()


def test_layer_atlas_lazy(layer_atlas_site, browser):
    base, site, L = layer_atlas_site
    context = browser.new_context(viewport={'width': 1300, 'height': 900})
    external = []; _local_only(context, external)
    page = context.new_page(); issues = collections.defaultdict(list); _watch(page, issues)
    asked = []
    page.on('request', lambda r: asked.append(urlsplit(r.url).path))
    page.goto(f'{base}/index.html', wait_until='load')
    page.wait_for_selector('body[data-ready="1"]', timeout=20_000)
    at_open = list(asked)
    first = page.locator('#grid .card').count()
    first_unit = page.locator('#grid .card').first.get_attribute('id')
    title = page.locator('#title').text_content()
    page.click('#next'); page.wait_for_function("() => document.getElementById('page').textContent.startsWith('page 2')", timeout=20_000)
    second_unit = page.locator('#grid .card').first.get_attribute('id')
    page.fill('#q', '17'); page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 1 && document.querySelector('#grid .card').id === 'u17'", timeout=20_000)
    by_id = page.locator('#grid .card').first.get_attribute('id')
    n = int(L.significant[0]); word = L.terms[n][0][0].lower()
    page.fill('#q', word)
    page.wait_for_function(f"() => [...document.querySelectorAll('#grid .card')].some(c => c.id === 'u{n}')", timeout=20_000)
    by_word = page.locator('#grid .card').count()
    card_words = page.locator('#grid .card .words').all_text_contents()
    page.fill('#q', 'nosuchword'); page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 0", timeout=20_000)
    page.fill('#q', word); page.wait_for_selector(f'#u{n}', timeout=20_000)
    page.click(f'#u{n}')
    page.wait_for_url(f'**/neuron.html?u={n}', timeout=20_000)
    page.wait_for_selector('body[data-ready="1"]', timeout=20_000)
    page.wait_for_function("() => ['histogram', 'description', 'map'].every(k => document.querySelector('#fig-' + k + ' svg.main-svg'))", timeout=20_000)
    header = page.locator('#h').text_content()
    tops = page.locator('#tops img').count()
    loaded = page.evaluate("() => [...document.querySelectorAll('#tops img')].every(i => i.complete && i.naturalWidth > 0)")
    context.close()
    assert first == 60 and title == 'tiny ViT layer 1: atlas of 256 neurons', (first, title)
    assert first_unit == f'u{n}' and second_unit == f'u{int(L.significant[60])}', (first_unit, second_unit)
    opened = {p.rsplit('/', 1)[-1] for p in at_open if not p.startswith('/thumbs/')}
    assert opened == {'index.html', 'meta.js', 'rows-000.js'}, sorted(opened)  # no figures, no word index, no plotly at open
    assert '/atlas-data/rows-001.js' in asked and '/atlas-data/words.js' in asked  # loaded when needed
    assert by_id == 'u17'
    assert 0 < by_word <= 256 and all(word in w.lower() for w in card_words), (word, by_word, card_words[:3])
    assert header.startswith(f'tiny ViT layer 1, unit {n} (rank 1 of 256)'), header
    assert tops == 3 and loaded
    assert not issues['pageerror'] and not issues['console'] and not issues['requestfailed'], dict(issues)
    assert not external, external
