"""The docs site in a real browser: build it, serve it on 127.0.0.1, open every page in headless Chromium.

Fails on: a notebook without its page, a console error or uncaught page error, a failed request, any
request to a host other than 127.0.0.1 (the site must work offline), a broken internal link or anchor,
a plotly figure that did not draw, a search that finds nothing. Saves `artifacts/docs_home.png`.

    .venv/bin/python -m pytest tests/test_docs.py -q
    NEURONLENS_DOCS_PREBUILT=1 .venv/bin/python -m pytest tests/test_docs.py -q   # use the _docs/ already built

Needs Debian's Chromium (`apt-get install -y chromium`, or a path in NEURONLENS_CHROMIUM); without it the
browser tests skip, unless the CI environment variable is set, where they fail.
"""
import collections
import importlib.util
import os
import re
import subprocess
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

import pytest

from conftest import ROOT  # the `browser` fixture (Debian chromium + Playwright) is in conftest too

_spec = importlib.util.spec_from_file_location('build_docs', ROOT / 'tools' / 'build_docs.py')
build_docs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(build_docs)

DOCS = ROOT / build_docs.read_settings(ROOT).get('doc_path', '_docs')
ARTIFACTS = ROOT / 'artifacts'
EXPECTED = build_docs.expected_pages(ROOT)            # {'00_core.ipynb': 'core.html', ...}
LOCAL_SCHEMES = {'data', 'blob', 'about'}
PLOT_TIMEOUT_MS = 20_000
STOPWORDS = set('''about above after again against because been before being below between both could does doing during
each from further have having here itself just more most once only other over same should some such than that their
theirs them then there these they this those through under until very what when where which while whom will with would
your yours notebook'''.split())


# ----------------------------------------------------------------------------------------------
# Fixtures: build, serve, crawl

@pytest.fixture(scope='session')
def built_site():
    "Build the docs into _docs/ (or use the existing build if NEURONLENS_DOCS_PREBUILT=1)."
    if os.environ.get('NEURONLENS_DOCS_PREBUILT') == '1':
        res = None
    else:
        t = time.time()
        res = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_docs.py'), '--out', str(DOCS)],
                             cwd=ROOT, capture_output=True, text=True)
        res.secs = time.time() - t
    if not (DOCS / 'index.html').exists():
        log = f"\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}" if res else ''
        pytest.fail(f"no docs site in {DOCS}{log}", pytrace=False)
    return res


@pytest.fixture(scope='session')
def server(built_site):
    "Serve _docs/ on 127.0.0.1 with a free port."
    srv = build_docs.make_server(DOCS, 0)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown(); srv.server_close()


def _html_pages():
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob('*.html') if '_static' not in p.parts)


def _visit(context, base, page, issues):
    "Open one page; record its problems, internal links, ids and plots."
    pg = context.new_page()
    def on_console(m):
        if m.type == 'error': issues['console'].append(f"{m.text} @ {m.location.get('url', '')}")
    pg.on('console', on_console)
    pg.on('pageerror', lambda e: issues['pageerror'].append(str(e)))
    pg.on('requestfailed', lambda r: issues['requestfailed'].append(f"{r.url} ({r.failure})"))
    pg.on('response', lambda r: r.status >= 400 and issues['http'].append(f"{r.status} {r.url}"))
    try: pg.goto(f"{base}/{page}", wait_until='load', timeout=60_000)
    except Exception as e: issues['load'].append(f"{page} did not load: {e}")
    try: pg.wait_for_load_state('networkidle', timeout=10_000)
    except Exception: pass
    n_plots = pg.locator('.plotly-graph-div').count()
    if n_plots:
        try:
            pg.wait_for_function("""() => [...document.querySelectorAll('.plotly-graph-div')]
                                     .every(d => d.querySelector('svg.main-svg'))""", timeout=PLOT_TIMEOUT_MS)
        except Exception: pass
    undrawn = pg.eval_on_selector_all('.plotly-graph-div', "els => els.filter(d => !d.querySelector('svg.main-svg')).map(d => d.id)")
    issues['plots'] += [f"plot #{i} did not draw" for i in undrawn]
    links = pg.eval_on_selector_all('a[href]', "els => els.map(e => e.href)")
    ids = pg.eval_on_selector_all('[id], a[name]', "els => els.map(e => e.id || e.getAttribute('name'))")
    return pg, {'links': links, 'ids': set(ids), 'plots': n_plots, 'drawn': n_plots - len(undrawn)}


@pytest.fixture(scope='session')
def crawl(server, browser):
    "Every html page of the site, visited once: {page: {'issues':..., 'links':..., 'ids':..., 'plots':...}}."
    context = browser.new_context(viewport={'width': 1280, 'height': 800}, service_workers='block')
    external = []
    def route(r):
        u = urlsplit(r.request.url)
        if u.scheme in LOCAL_SCHEMES or u.hostname == '127.0.0.1': r.continue_()
        else: external.append(r.request.url); r.abort()
    context.route('**/*', route)
    res = {}
    for page in _html_pages():
        issues = collections.defaultdict(list)
        pg, info = _visit(context, server, page, issues)
        if page == 'index.html':
            ARTIFACTS.mkdir(exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / 'docs_home.png'))
            info['text'] = pg.inner_text('main')
        pg.close()
        info['issues'] = issues
        res[page] = info
    context.close()
    res['__external__'] = external
    return res


# ----------------------------------------------------------------------------------------------
# Tests

def test_docs_build_succeeds(built_site):
    if built_site is None: pytest.skip("NEURONLENS_DOCS_PREBUILT=1: the build was not run here")
    assert built_site.returncode == 0, (f"tools/build_docs.py failed (exit {built_site.returncode}):\n"
                                        f"{built_site.stdout[-3000:]}\n{built_site.stderr[-8000:]}")
    print(f"docs build took {built_site.secs:.0f}s")  # a time, not a test: speed targets live in benchmarks/


@pytest.mark.parametrize('nb', sorted(EXPECTED), ids=str)
def test_page_for_notebook(nb, built_site):
    page = EXPECTED[nb]
    assert (DOCS / page).exists(), f"{nb} has no page {page} in {DOCS.name}/"


def _check_page(crawl, page):
    assert page in crawl, f"{page} was not found in the site"
    info = crawl[page]
    problems = [f"{kind}: {m}" for kind, ms in info['issues'].items() for m in ms]
    assert not problems, f"{page}:\n  " + '\n  '.join(problems[:40])


@pytest.mark.parametrize('page', sorted(set(EXPECTED.values())) + ['search.html', 'genindex.html'], ids=str)
def test_page_loads_cleanly(page, crawl):
    "No console/page errors, failed or >=400 requests, and every plotly figure drew an svg."
    _check_page(crawl, page)


def test_other_pages_load_cleanly(crawl):
    named = set(EXPECTED.values()) | {'search.html', 'genindex.html'}
    others = [p for p in crawl if p not in named and not p.startswith('__')]
    for p in others: _check_page(crawl, p)


def test_no_external_requests(crawl):
    ext = crawl['__external__']
    assert not ext, "the site requested hosts other than 127.0.0.1 (it must work offline):\n  " + '\n  '.join(sorted(set(ext))[:40])


def test_internal_links(crawl, server):
    "Every link into the site points at a file that exists, and at an element id that exists."
    broken = []
    for page, info in crawl.items():
        if page.startswith('__'): continue
        for href in info['links']:
            u = urlsplit(href)
            if u.scheme not in ('http', 'https') or f"{u.scheme}://{u.netloc}" != server: continue
            path = unquote(u.path).lstrip('/')
            if not path or path.endswith('/'): path += 'index.html'
            if not (DOCS / path).is_file(): broken.append(f"{page}: {href} (no file {path})"); continue
            if u.fragment and path.endswith('.html'):
                target = crawl.get(path)
                if target is not None and unquote(u.fragment) not in target['ids']:
                    broken.append(f"{page}: {href} (no id #{unquote(u.fragment)} in {path})")
    assert not broken, f"{len(broken)} broken internal link(s):\n  " + '\n  '.join(sorted(set(broken))[:60])


def test_plots_present_and_drawn(crawl):
    "Pages with plotly figures drew all of them (also checked per page); report the count."
    n = sum(i['plots'] for p, i in crawl.items() if not p.startswith('__'))
    drawn = sum(i['drawn'] for p, i in crawl.items() if not p.startswith('__'))
    assert drawn == n, f"{n - drawn} of {n} plotly figures did not draw"


def test_search_finds_a_word_from_the_home_page(crawl, server, browser):
    words = [w.lower() for w in re.findall(r'[A-Za-z]{6,}', crawl['index.html'].get('text', ''))]
    words = [w for w in words if w not in STOPWORDS]
    assert words, "the home page has no words to search for"
    word = collections.Counter(words).most_common(1)[0][0]
    context = browser.new_context()
    context.route('**/*', lambda r: r.continue_() if urlsplit(r.request.url).hostname in ('127.0.0.1', None) else r.abort())
    pg = context.new_page()
    errors = []
    pg.on('pageerror', lambda e: errors.append(str(e)))
    pg.goto(f"{server}/search.html?q={word}", wait_until='load')
    try: pg.wait_for_selector('#search-results ul.search li', timeout=15_000)
    except Exception: pass
    n = pg.locator('#search-results ul.search li').count()
    summary = pg.locator('#search-results').inner_text() if pg.locator('#search-results').count() else ''
    context.close()
    assert not errors, f"search page errors: {errors}"
    assert n > 0, f"searching for {word!r} found nothing: {summary[:300]!r}"


def test_home_screenshot_saved(crawl):
    p = ARTIFACTS / 'docs_home.png'
    assert p.exists() and p.stat().st_size > 10_000, f"no home page screenshot at {p}"
