#!/usr/bin/env python
"""Build the neuronlens docs site without Quarto, and serve it.

    .venv/bin/python tools/build_docs.py                 # nbs/ -> _proc/ -> _build/docs_src/ -> _docs/
    .venv/bin/python tools/build_docs.py --out /tmp/site # build somewhere else
    .venv/bin/python tools/build_docs.py --serve         # build, then serve on http://127.0.0.1:8000
    .venv/bin/python tools/build_docs.py --serve --no-build --port 8001   # serve what is there

Steps:
1. nbdev's own notebook processing (what `nbdev_proc_nbs` runs, minus its Quarto install and its
   rewrite of `sidebar.yml`/`_modidx.py`): front matter, `show_doc` cells, `#|hide`, doc links -> `_proc/`.
   One notebook's failure is reported with its cell and does not stop the others.
2. Each processed notebook becomes a MyST notebook under `_build/docs_src/`: title and description from
   the front matter, `#| output: asis` (show_doc) outputs turned into markdown (so API entries are real,
   searchable sections with nbdev's anchors), `---` rules dropped where docutils forbids them, Quarto
   cell options (`echo`, `output`, `include`, `code-fold`) applied, plotly figures turned into
   `Plotly.newPlot` calls on the site's own `_static/plotly.min.js`, CDN references stripped.
   Pages are named the way nbdev/Quarto name them (`00_core.ipynb` -> `core.html`), so nbdev doc links work.
3. Sphinx + myst-nb + sphinx-book-theme (`nb_execution_mode = "off"`) with `-W --keep-going`.
   The site loads nothing from outside itself (MathJax from `sphinx-mathjax-offline`, plotly.js from
   the installed plotly package).
Exit status 1 if any notebook failed to process, a page is broken, or Sphinx warned.
"""
from __future__ import annotations

import argparse
import configparser
import copy
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                  # this checkout's neuronlens, whatever the environment has installed
from neuronlens.views.plotly_html import figure_html, plotly_js  # the one plotly-to-HTML writer (atlas, report, docs)
SRC_DIR = Path('_build') / 'docs_src'          # relative to ROOT
DOCTREES = Path('_build') / 'docs_doctrees'

PLOTLY_MIME = 'application/vnd.plotly.v1+json'
EXTRA_SITES = ('atlas',)                       # folders of the site written by `write_atlas_site`, not by Sphinx
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'


def log(msg: str) -> None:
    print(f"[build_docs] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Settings and notebooks

def read_settings(root: Path = ROOT) -> dict:
    "settings.ini as a dict."
    cfg = configparser.ConfigParser(delimiters=['='], interpolation=None)
    cfg.read(root / 'settings.ini', encoding='utf-8')
    return dict(cfg['DEFAULT'])


# Navigation: one group per subpackage, in dependency order, the two papers named (sidebar.yml says the same for Quarto)
SECTIONS = {
    '': None,
    'toy': 'The toy world',
    'models': 'Models',
    'data': 'Data',
    'limber': 'Paper 1: multimodal neurons (LiMBeR)',
    'lens': 'Paper 2: the second-order lens',
    'views': 'Views: records, explorers, atlas',
    'app': 'The main job and the CLI',
}


def list_notebooks(nbs: Path) -> list[Path]:
    "Notebooks of the docs, relative to `nbs`, in name order; skips `_`/`.` files and folders like nbdev."
    if not nbs.exists(): return []
    out = []
    for p in nbs.rglob('*.ipynb'):
        rel = p.relative_to(nbs)
        if any(part.startswith(('_', '.')) for part in rel.parts): continue
        if p.is_file(): out.append(rel)
    return sorted(out, key=lambda r: r.as_posix())


def page_name(rel: Path | str) -> str:
    "Page (no suffix) for a notebook, as nbdev names it: `tutorials/01_tour.ipynb` -> `tutorials/tour`."
    rel = Path(rel)
    name = re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.name.lower())
    return (rel.with_name(name).with_suffix('')).as_posix()


def expected_pages(root: Path = ROOT) -> dict[str, str]:
    "Map each notebook (posix, relative to nbs/) to the html file (relative to the site) built from it."
    s = read_settings(root)
    nbs = root / s.get('nbs_path', 'nbs')
    return {r.as_posix(): page_name(r) + '.html' for r in list_notebooks(nbs)}


# ----------------------------------------------------------------------------------------------
# Step 1: nbdev processing (the per-notebook part of `nbdev_proc_nbs`)

def _explain(e: BaseException) -> str:
    "nbdev's error (it names the cell and shows its source) plus the root cause from the worker's traceback."
    tb = ''.join(traceback.format_exception(e))
    causes = re.findall(r'^(\w+(?:Error|Exception|Exit|Interrupt)\b.*)$', str(getattr(e, '__cause__', '') or tb), re.M)
    msg = str(e).strip()
    if 'Error in notebook' not in msg: return tb[-4000:]
    hint = ('\n  (to render show_doc, nbdev runs every cell that contains an import, without the cells before it:'
            ' put imports in cells of their own; see the nbdev FAQ)') if causes and 'NameError' in causes[0] else ''
    return f"{msg[:3000]}\n  caused by: {causes[0] if causes else '?'}{hint}"


def process_notebooks(root: Path, nbs: Path, rels: list[Path], force: bool = False, workers: int = 2) -> dict:
    "Process notebooks into `root/_proc` (mtime-cached, like nbdev); returns {rel: error text}."
    import nbdev.serve
    cache = root / '_proc'
    chk = max((root / 'settings.ini').stat().st_mtime, Path(nbdev.serve.__file__).stat().st_mtime)
    if cache.exists() and (force or cache.stat().st_mtime < chk): shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    todo = []
    for rel in rels:
        src, dst = nbs / rel, cache / rel
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime: continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        todo.append((src, dst))
    # other files nbdev copies (images and the like that notebooks refer to)
    for p in nbs.rglob('*'):
        rel = p.relative_to(nbs)
        if not p.is_file() or p.suffix == '.ipynb' or any(x.startswith(('.', '_')) for x in rel.parts): continue
        d = cache / rel
        if not d.exists() or d.stat().st_mtime < p.stat().st_mtime:
            d.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(p, d)
    errors = {}
    if todo:
        import nbdev.serve_drv
        from nbdev.processors import FilterDefaults
        log(f"nbdev processing {len(todo)} notebook(s): {', '.join(s.name for s, _ in todo)}")
        # like nbdev.serve.proc_nbs: nbdev.serve_drv.main in spawned workers (cwd = repo root), but one
        # notebook's failure is recorded instead of stopping the rest
        with ProcessPoolExecutor(max(1, min(workers, len(todo))), mp_context=get_context('spawn')) as ex:
            futs = [(s, d, ex.submit(nbdev.serve_drv.main, (s, d, FilterDefaults))) for s, d in todo]
            for s, d, f in futs:
                try: f.result()
                except Exception as e:
                    errors[s.relative_to(nbs).as_posix()] = _explain(e)
                    if d.exists(): d.unlink()
    cache.touch()
    return errors


# ----------------------------------------------------------------------------------------------
# Step 2: processed notebook -> MyST notebook

_re_dir = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
_re_fence = re.compile(r'^\s{0,3}(`{3,}|~{3,}|:{3,})')
_re_heading = re.compile(r'^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
_re_rule = re.compile(r'^\s{0,3}((\*\s*){3,}|(-\s*){3,}|(_\s*){3,})$')
_re_script = re.compile(r'<script\b([^>]*)>(.*?)</script\s*>', re.S | re.I)
_re_ext_attr = re.compile(r'''\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//''', re.I)
_re_ext_tag = re.compile(r'<(link|img|iframe|source|video|audio|embed|object)\b[^>]*>(?:\s*</\1\s*>)?', re.S | re.I)
_re_ext_css = re.compile(r'@import\s+(?:url\()?["\']?(?:https?:)?//[^;]*;', re.I)
_re_md_link = re.compile(r'(\]\()(<[^>]*>|[^)\s]+)((?:\s+"[^"]*")?\))')
_re_srclink = re.compile(r'\[source\]\(([^)\s]+)\)\{target="_blank" style="[^"]*"\}')
_re_callout = re.compile(r'^(\s*)(:{3,})\s*\{\.callout-(note|tip|warning|important|caution)([^}]*)\}\s*$')


def _text(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


def cell_options(src: str) -> tuple[dict, str]:
    "Quarto/nbdev `#| key: value` options at the top of a cell, and the source without them."
    lines, opts = src.splitlines(), {}
    i = 0
    while i < len(lines):
        m = _re_dir.match(lines[i])
        if m: opts[m.group(1).lower()] = m.group(2).strip().strip('"\'').lower(); i += 1
        elif not lines[i].strip() and opts: i += 1
        else: break
    return opts, '\n'.join(lines[i:]).strip('\n')


def parse_frontmatter(raw: str) -> dict:
    "The YAML front matter nbdev writes in the first raw cell."
    import yaml
    m = re.match(r'^\s*---\s*\n(.*?)\n---\s*$', raw, re.S)
    if not m: return {}
    try: fm = yaml.safe_load(m.group(1)) or {}
    except Exception: return {}
    return fm if isinstance(fm, dict) else {}


def scrub_html(s: str) -> tuple[str, list[str]]:
    "Remove everything in an HTML output that would load from outside the site (CDNs, require.js, plotly.js bundles)."
    removed = []
    def script(m):
        attrs, body = m.group(1), m.group(2)
        if _re_ext_attr.search(attrs): removed.append(re.sub(r'\s+', ' ', attrs.strip())[:120]); return ''
        if re.search(r'\bsrc\s*=', attrs): return m.group(0)          # a local script file
        if re.search(r'plotly\.js v\d|require\.config\s*\(|import\s+["\'](?:https?:)?//|requirejs\s*\(', body):
            removed.append('inline plotly.js/require.js loader'); return ''
        if re.search(r'''["'](?:https?:)?//[^"']*\.(?:js|css)["']''', body) and 'Plotly.newPlot' not in body:
            removed.append('script loading a remote file'); return ''
        return m.group(0)
    s = _re_script.sub(script, s)
    def tag(m):
        if _re_ext_attr.search(m.group(0)): removed.append(m.group(0)[:120]); return ''
        return m.group(0)
    s = _re_ext_tag.sub(tag, s)
    s, n = _re_ext_css.subn('', s)
    if n: removed.append('css @import of a remote file')
    return s, removed


def plotly_html(fig: dict, div_id: str) -> str:
    "An HTML output that draws a notebook's plotly figure (`application/vnd.plotly.v1+json`) with the site's plotly.js."
    # the figure's own config, less what would load from outside the site (topojson, MathJax)
    config = {k: v for k, v in fig.get('config', {}).items() if k not in ('topojsonURL', 'mathjax')}
    return figure_html(fig, div_id, config=config)


# Why a converter of our own remains: nbdev renders its processed notebooks with Quarto, which this build does not
# use, and myst-nb has no renderer for plotly's JSON output (only plotly's notebook HTML, which loads plotly.js from a
# CDN or through require.js), nor for nbdev's `show_doc` (`#| output: asis`) outputs or Quarto's cell options. So each
# processed notebook is rewritten here into the notebook myst-nb reads; its plotly figures are written by
# neuronlens's own writer (`figure_html`, plotly's public `to_html`), the one the atlas and the report use.
class PageConverter:
    "Converts one processed notebook into the notebook Sphinx reads."
    def __init__(self, rel: Path, pages: dict[str, str], settings: dict):
        self.rel, self.pages, self.settings = rel, pages, settings
        self.page = page_name(rel)
        self.problems: list[str] = []       # broken-page problems (fail the build)
        self.notes: list[str] = []          # things fixed on the way (reported only)
        self.n_plots, self.anchors = 0, set()
        host = (settings.get('doc_host', '') + settings.get('doc_baseurl', '')).rstrip('/')
        self.site_prefix = host + '/' if host else None

    # links ------------------------------------------------------------------------------------
    def _rel_url(self, target_page: str, anchor: str) -> str:
        here = Path(self.page).parent
        url = os.path.relpath(target_page + '.html', here.as_posix() or '.')
        return url + (('#' + anchor) if anchor else '')

    def fix_url(self, url: str) -> str:
        "Point links to other notebooks/pages (relative, or absolute on doc_host) at the built pages."
        u = url.strip('<>')
        if self.site_prefix and u.startswith(self.site_prefix):
            path, _, anchor = u[len(self.site_prefix):].partition('#')
            path = path or 'index.html'
            if path.endswith(('.html', '.ipynb')) and page_name(path) in self.pages: return self._rel_url(page_name(path), anchor)
            return url
        if re.match(r'^[a-z][a-z0-9+.-]*:|^//|^#', u, re.I): return url
        path, _, anchor = u.partition('#')
        if not path.endswith(('.ipynb', '.html', '.md', '.qmd')): return url
        here = Path(self.rel).parent
        target = os.path.normpath((here / path).as_posix())
        if target.startswith('..'): return url
        if target.split('/')[0] in EXTRA_SITES: return url      # static sites written next to the pages (the neuron atlas)
        name = page_name(target)
        if name in self.pages: return self._rel_url(name, anchor)
        self.problems.append(f"link to a page that is not built: {u}")
        return url

    def fix_links(self, md: str) -> str:
        md = _re_srclink.sub(lambda m: f'[\\[source\\]]({m.group(1)}){{.nl-source target="_blank"}}', md)
        return _re_md_link.sub(lambda m: m.group(1) + self.fix_url(m.group(2)) + m.group(3), md)

    # markdown ---------------------------------------------------------------------------------
    def api_markdown(self, md: str) -> str:
        "A show_doc output as markdown: its heading gets nbdev's anchor (`#hook.remove`) and the API class."
        from docutils.nodes import make_id
        out, pending = [], []          # pending: nbdev's `---` and [source] link, which come before the heading
        for line in md.splitlines():
            m = _re_heading.match(line)
            if m and len(m.group(1)) >= 2:
                name = re.sub(r'<[^>]+>|[`*\\]', '', m.group(2)).strip()
                anchor = name.lower()
                if anchor and anchor != make_id(name) and anchor not in self.anchors and re.fullmatch(r'[\w.\-]+', anchor):
                    out += [f'<span id="{html.escape(anchor)}" class="nl-anchor"></span>', '']
                self.anchors.add(anchor)
                out += ['{.nl-api}', line, '']
                out += [x for p in pending if 'nl-source' in p for x in ('{.nl-srcline}', p, '')]   # the section's border replaces the rule
                pending = []
            elif not out and (_re_rule.match(line) or '{.nl-source' in line or not line.strip()):
                pending.append(line)
            else: out.append(line)
        return '\n'.join(pending + out)

    def callouts(self, md: str) -> str:
        "Quarto callouts (`::: {.callout-note}`) as MyST admonitions."
        def sub(m): return f'{m.group(1)}{m.group(2)}{{{"attention" if m.group(3) == "important" else m.group(3)}}}'
        return '\n'.join(_re_callout.sub(sub, l) for l in md.splitlines())

    # outputs ----------------------------------------------------------------------------------
    def convert_output(self, o: dict, where: str) -> dict | None:
        o = copy.deepcopy(o)
        if o.get('output_type') == 'error':
            self.problems.append(f"{where}: saved error output {o.get('ename')}: {o.get('evalue', '')[:200]}")
            return o
        if o.get('output_type') not in ('display_data', 'execute_result'): return o
        data = o.get('data', {})
        if PLOTLY_MIME in data:
            fig = data[PLOTLY_MIME]
            if isinstance(fig, str): fig = json.loads(fig)
            self.n_plots += 1
            div_id = re.sub(r'[^A-Za-z0-9_-]', '-', f'plotly-{self.page}-{self.n_plots}')
            o['data'] = {'text/html': plotly_html(fig, div_id)}
            o['metadata'] = {}
            return o
        if WIDGET_MIME in data:
            data.pop(WIDGET_MIME)
            data['text/html'] = '<p class="nl-widget"><em>An interactive widget: run the notebook to use it.</em></p>'
            data.pop('text/plain', None)
        if 'text/html' in data:
            h, removed = scrub_html(_text(data['text/html']))
            if removed: self.notes.append(f"{where}: removed from an HTML output: {'; '.join(removed)}")
            if 'plotly-graph-div' in h: self.n_plots += 1
            rest = re.sub(r'<(script|style)\b.*?</\1\s*>', '', h, flags=re.S | re.I)
            empty = not re.sub(r'</?(div|span)\b[^>]*>', '', rest).strip() and 'Plotly.newPlot' not in h
            if empty and ('<script' not in h or 'PlotlyConfig' in h):
                data.pop('text/html')          # e.g. plotly's renderer-init output: nothing left to show
            else: data['text/html'] = h
        for k in [k for k in data if k.startswith('application/javascript')]:
            js, removed = scrub_html(f'<script>{_text(data[k])}</script>')
            if removed: data.pop(k); self.notes.append(f"{where}: dropped javascript output loading remote code")
        if not data: return None
        o['data'] = data
        return o

    # cells ------------------------------------------------------------------------------------
    def convert(self, nb: dict) -> dict:
        cells, fm = list(nb.get('cells', [])), {}
        if cells and cells[0].get('cell_type') == 'raw':
            fm = parse_frontmatter(_text(cells[0].get('source')))
            if fm: cells = cells[1:]
        title = str(fm.get('title') or Path(self.page).name.replace('_', ' ').title())
        desc = str(fm.get('description') or '').strip()
        head = f'# {title}\n'
        if desc: head += '\n{.nl-description}\n' + ' '.join(desc.split()) + '\n'
        new = [{'cell_type': 'markdown', 'metadata': {}, 'source': head}]
        for i, c in enumerate(cells):
            where, ct, src = f"cell {i + 1}", c.get('cell_type'), _text(c.get('source'))
            if ct == 'markdown':
                if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
                new.append({'cell_type': 'markdown', 'metadata': {}, 'source': self.callouts(self.fix_links(src))})
            elif ct == 'raw':
                fmt = (c.get('metadata', {}).get('format') or c.get('metadata', {}).get('raw_mimetype') or '').lower()
                if 'markdown' in fmt: new.append({'cell_type': 'markdown', 'metadata': {}, 'source': self.fix_links(src)})
                elif 'html' in fmt: new.append({'cell_type': 'raw', 'metadata': {'format': 'text/html'}, 'source': scrub_html(src)[0]})
            elif ct == 'code':
                opts, body = cell_options(src)
                if opts.get('include') == 'false': continue
                outs = c.get('outputs', [])
                if opts.get('output') == 'asis':
                    md = []
                    for o in outs:
                        d = o.get('data', {})
                        if 'text/markdown' in d: md.append(self.api_markdown(self.fix_links(_text(d['text/markdown']))))
                        elif o.get('output_type') == 'stream': md.append(_text(o.get('text')))
                        elif 'text/html' in d: md.append(scrub_html(_text(d['text/html']))[0])
                    if md and opts.get('echo') != 'false' and body:
                        new.append({'cell_type': 'code', 'metadata': {}, 'source': body, 'outputs': [], 'execution_count': None})
                    if md: new.append({'cell_type': 'markdown', 'metadata': {}, 'source': '\n\n'.join(md)})
                    continue
                outs = [x for x in (self.convert_output(o, where) for o in outs) if x is not None]
                if opts.get('output') == 'false': outs = []
                tags = []
                if opts.get('echo') == 'false' or not body.strip(): tags.append('remove-input')
                elif opts.get('code-fold') in ('true', 'show'): tags.append('hide-input')
                if not outs and 'remove-input' in tags: continue
                new.append({'cell_type': 'code', 'metadata': {'tags': tags} if tags else {}, 'source': body,
                            'outputs': outs, 'execution_count': c.get('execution_count')})
        self.drop_bad_rules(new)
        for k, c in enumerate(new): c['id'] = f'c{k}'
        meta = {k: v for k, v in nb.get('metadata', {}).items() if k in ('kernelspec', 'language_info')}
        meta.setdefault('kernelspec', {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'})
        meta.setdefault('language_info', {'name': 'python'})
        return {'cells': new, 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 5}

    @staticmethod
    def drop_bad_rules(cells: list[dict]) -> None:
        "Drop `---` rules where docutils forbids a transition: first/last in a section, or next to another."
        blocks = []                      # (kind, cell index, line index) over the whole page
        for ci, c in enumerate(cells):
            if c['cell_type'] != 'markdown': blocks.append(('body', ci, None)); continue
            lines, fence, prev_blank = c['source'].splitlines(), None, True
            for li, l in enumerate(lines):
                fm = _re_fence.match(l)
                if fence:
                    if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence): fence = None
                    continue
                if fm: fence = fm.group(1); blocks.append(('body', ci, li)); prev_blank = False; continue
                if not l.strip(): prev_blank = True; continue
                if _re_rule.match(l) and prev_blank: blocks.append(('rule', ci, li))
                elif _re_heading.match(l): blocks.append(('heading', ci, li))
                elif re.match(r'^\s*\{[.#][^}]*\}\s*$', l) or re.match(r'^\s*<span id="[^"]*" class="nl-anchor"></span>\s*$', l): pass
                elif re.match(r'^\s{0,3}(=+|-+)\s*$', l) and not prev_blank and blocks and blocks[-1][0] == 'body':
                    blocks[-1] = ('heading', ci, li)   # setext heading underline
                else: blocks.append(('body', ci, li))
                prev_blank = False
        drop = set()
        for k, (kind, ci, li) in enumerate(blocks):
            if kind != 'rule': continue
            prev = next((b[0] for b in reversed(blocks[:k]) if (b[1], b[2]) not in drop), None)
            nxt = blocks[k + 1][0] if k + 1 < len(blocks) else None
            if prev in (None, 'heading', 'rule') or nxt in (None, 'heading', 'rule'): drop.add((ci, li))
        for ci in {ci for ci, _ in drop}:
            lines = cells[ci]['source'].splitlines()
            cells[ci]['source'] = '\n'.join(l for li, l in enumerate(lines) if (ci, li) not in drop)


# ----------------------------------------------------------------------------------------------
# Sphinx project

CSS = """
.nl-description { font-size: 1.2em; color: var(--pst-color-text-muted); margin-top: -.5rem; }
section.nl-api { border-top: 1px solid var(--pst-color-border); margin-top: 1.5rem; padding-top: .5rem; }
section.nl-api > h2, section.nl-api > h3, section.nl-api > h4 { font-family: var(--pst-font-family-monospace); font-size: 1.1rem;
  margin-top: .4rem; padding-right: 5em; }
section.nl-api { position: relative; }
p.nl-srcline { position: absolute; right: 0; top: 1rem; margin: 0; font-size: smaller; }
.nl-widget { color: var(--pst-color-text-muted); }
div.cell_output .output.text_html { overflow-x: auto; }
div.cell_output .plotly-graph-div { margin: 0 auto; }
"""

FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="14" fill="#3b5b92"/>'
           '<circle cx="16" cy="16" r="6" fill="#f5c542"/></svg>')

CONF = r'''# Generated by tools/build_docs.py; edit that script, not this file.
from sphinx.util import logging

project = {title!r}
author = {author!r}
copyright = {copyright!r}
html_title = {title!r}
extensions = ['myst_nb']
root_doc = 'index'
exclude_patterns = ['_build', '**.ipynb_checkpoints']
nb_execution_mode = 'off'
nb_merge_streams = True
nb_output_stderr = 'show'
nb_render_markdown_format = 'myst'
nb_ipywidgets_js = {{}}                 # never load require.js / widget managers from a CDN
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'deflist', 'attrs_block', 'attrs_inline',
                          'html_image', 'substitution', 'tasklist']
myst_all_links_external = True         # build_docs.py already points page links at the built .html files
myst_dmath_double_inline = True
suppress_warnings = ['myst.header']    # show_doc writes ### headings wherever it is called
html_theme = 'sphinx_book_theme'
html_context = {{'default_mode': 'light'}}   # pydata-sphinx-theme logs a console error without one
html_static_path = ['_static'] + {static_extra!r}
html_css_files = ['neuronlens.css']
html_favicon = 'favicon.svg'           # else browsers ask for /favicon.ico, a 404
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
mathjax_path = 'mathjax/tex-chtml.js'  # served by the site itself (sphinx-mathjax-offline)
html_theme_options = {{
    'repository_url': {git_url!r},
    'repository_branch': {branch!r},
    'path_to_docs': 'nbs',
    'use_repository_button': bool({git_url!r}),
    'use_download_button': False,
    'use_fullscreen_button': False,
    'home_page_in_toc': True,
    'show_navbar_depth': 1,
    'navigation_with_keys': False,
    'show_toc_level': 2,
    'launch_buttons': {{}},
    'navbar_persistent': [],           # the sidebar has the search field; no second one in a top bar
}}
PLOTLY_PAGES = set({plotly_pages!r})
HAVE_MATHJAX = {have_mathjax!r}

def _page_js(app, pagename, templatename, context, doctree):
    if pagename in PLOTLY_PAGES: app.add_js_file('plotly.min.js', priority=200)

def _check_math(app, env):
    if not HAVE_MATHJAX:   # myst-nb puts MathJax on every notebook page
        logging.getLogger('neuronlens').warning(
            'no offline MathJax: pip install sphinx-mathjax-offline (pages would ask for a missing _static/mathjax)')

def setup(app):
    app.connect('html-page-context', _page_js)
    app.connect('env-updated', _check_math)
'''


def mathjax_dir() -> Path | None:
    "The folder holding `mathjax/` from the `sphinx-mathjax-offline` package, if installed."
    import importlib.util
    spec = importlib.util.find_spec('sphinx-mathjax-offline')
    if not spec or not spec.submodule_search_locations: return None
    d = Path(list(spec.submodule_search_locations)[0]) / 'static'
    return d if (d / 'mathjax' / 'tex-chtml.js').exists() else None


def write_source_tree(root: Path, src: Path, rels: list[Path], proc_ok: set, settings: dict) -> tuple[list, list, set]:
    "Write the Sphinx project for the processed notebooks; returns (problems, notes, plotly pages)."
    pages = {page_name(r): r for r in rels}
    problems, notes, plotly_pages = [], [], set()
    if len(pages) != len(rels):
        seen = {}
        for r in rels: seen.setdefault(page_name(r), []).append(r.as_posix())
        problems += [f"notebooks {v} would all become {k}.html" for k, v in seen.items() if len(v) > 1]
    if src.exists(): shutil.rmtree(src)
    (src / '_static').mkdir(parents=True)
    written = []
    for rel in rels:
        if rel.as_posix() not in proc_ok: continue
        nb = json.loads((root / '_proc' / rel).read_text(encoding='utf-8'))
        conv = PageConverter(rel, pages, settings)
        out = conv.convert(nb)
        problems += [f"{rel.as_posix()}: {p}" for p in conv.problems]
        notes += [f"{rel.as_posix()}: {n}" for n in conv.notes]
        if conv.n_plots: plotly_pages.add(conv.page)
        dst = src / (conv.page + '.ipynb')
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding='utf-8')
        written.append(conv.page)
    # other files next to the notebooks (images, data a page links to); not other sources Sphinx would read
    for p in (root / '_proc').rglob('*'):
        rel = p.relative_to(root / '_proc')
        if (p.is_file() and p.suffix.lower() not in ('.ipynb', '.md', '.rst', '.qmd', '.yml', '.yaml', '.py', '.css')
                and not any(x.startswith(('_', '.')) for x in rel.parts)):
            (src / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(p, src / rel)
    # home page and navigation: the index notebook, else a stub from settings.ini
    others = [w for w in written if w != 'index']
    groups: dict[str, list[str]] = {}
    for w in others: groups.setdefault(w.split('/')[0] if '/' in w else '', []).append(w)
    toc = ''
    order = list(SECTIONS)
    for g in sorted(groups, key=lambda g: (order.index(g) if g in order else len(order), g)):
        cap = f':caption: {SECTIONS.get(g) or g.replace("_", " ").replace("-", " ").capitalize()}\n' if g else ''
        toc += f'\n```{{toctree}}\n:hidden:\n:maxdepth: 2\n{cap}\n' + '\n'.join(groups[g]) + '\n```\n'
    if 'index' in written:
        idx = json.loads((src / 'index.ipynb').read_text(encoding='utf-8'))
        if toc: idx['cells'].append({'cell_type': 'markdown', 'id': 'toc', 'metadata': {}, 'source': toc})
        (src / 'index.ipynb').write_text(json.dumps(idx, indent=1, ensure_ascii=False), encoding='utf-8')
    else:
        if (root / settings.get('nbs_path', 'nbs') / 'index.ipynb').exists(): problems.append("index.ipynb: not built")
        (src / 'index.md').write_text(f"# {settings.get('title', 'neuronlens')}\n\n{settings.get('description', '')}\n{toc}", encoding='utf-8')
    (src / '_static' / 'neuronlens.css').write_text(CSS, encoding='utf-8')
    (src / 'favicon.svg').write_text(FAVICON, encoding='utf-8')
    (src / '_static' / 'plotly.min.js').write_text(plotly_js(), encoding='utf-8')
    mj = mathjax_dir()
    conf = CONF.format(title=settings.get('title', 'neuronlens'), author=settings.get('author', ''),
                       copyright=settings.get('copyright', ''), git_url=settings.get('git_url', ''),
                       branch=settings.get('branch', 'main'), plotly_pages=sorted(plotly_pages),
                       static_extra=[str(mj)] if mj else [], have_mathjax=bool(mj))
    (src / 'conf.py').write_text(conf, encoding='utf-8')
    return problems, notes, plotly_pages


ATLAS_CACHE = Path('_build') / 'atlas_cache'   # relative to ROOT; kept between builds, so a rebuild reads the runs from it
# Scenes the docs' captioner atlas is found on. Measured with `neuronlens atlas --captioner --captioner-scenes 8
# --n-neurons 12`, 1 thread, on 2 shared cores (load average 4): cold 123 s (ToyCLIP layer 29 s, captioner 91 s:
# SmolLM2 load, captions, attribution, ablated captions), from the kept cache 28 s. The main job's 16 scenes take
# about twice the captioner's part (NEURONLENS_DOCS_ATLAS=all).
DOCS_CAPTIONER_SCENES = 8


def write_atlas_site(root: Path, site: Path) -> list[str]:
    """The neuron atlas of the shipped ToyCLIP layer under `site/atlas/` and of the shipped captioner's multimodal
    units under `site/atlas/captioner/`, through `neuronlens atlas --captioner`; returns problems.
    The captioner's units are found on DOCS_CAPTIONER_SCENES held-out scenes (it loads SmolLM2; times measured there),
    all of it cached in ATLAS_CACHE, so a rebuild only reads it. NEURONLENS_DOCS_ATLAS=all uses the main job's 16
    scenes; =toyclip leaves the captioner out (a stub page says how to build it); =0 leaves the atlas out (its links
    are then broken, and the build says so)."""
    which = os.environ.get('NEURONLENS_DOCS_ATLAS', 'default').strip().lower()
    if which in ('0', 'no', 'off', 'false'): return ['NEURONLENS_DOCS_ATLAS=0: the atlas was not built']
    exe = Path(sys.executable).parent / 'neuronlens'
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ['-m', 'neuronlens.app.cli']), 'atlas',
           '--out', str(site / 'atlas'), '--cache', str(root / ATLAS_CACHE), '--n-neurons', '12']
    if which != 'toyclip': cmd += ['--captioner', '--captioner-scenes', '16' if which == 'all' else str(DOCS_CAPTIONER_SCENES)]
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    t = time.time()
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    if res.returncode: return [f"neuronlens atlas failed (exit {res.returncode}): {res.stderr[-3000:]}"]
    if which == 'toyclip':
        stub = site / 'atlas' / 'captioner' / 'index.html'
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>captioner atlas</title><link rel="icon" href="data:,"></head>'
                        '<body><h1>The captioner\'s multimodal units</h1><p>Not built with these docs (NEURONLENS_DOCS_ATLAS=toyclip; it loads SmolLM2-135M). Build it with '
                        '<code>neuronlens atlas --captioner --out atlas</code>, or the docs without <code>NEURONLENS_DOCS_ATLAS=toyclip</code>.</p>'
                        '<p><a href="../index.html">ToyCLIP layer atlas</a></p></body></html>', encoding='utf-8')
    log(f"atlas: {len(list((site / 'atlas').rglob('*.html')))} page(s) in {time.time() - t:.1f}s")
    return []


def _safe_to_replace(out: Path) -> bool:
    "Only an empty folder or an earlier Sphinx/Quarto build may be wiped."
    if not out.exists(): return True
    if not out.is_dir(): return False
    names = {p.name for p in out.iterdir()}
    return not names or bool(names & {'.buildinfo', 'site_libs', 'search.json', '.nojekyll', 'searchindex.js'})


def build(root: Path = ROOT, out: Path | None = None, force: bool = False, strict: bool = True, workers: int = 2) -> int:
    "The whole build; returns the exit status."
    t0 = time.time()
    os.chdir(root)
    settings = read_settings(root)
    nbs = root / settings.get('nbs_path', 'nbs')
    out = Path(out) if out else root / settings.get('doc_path', '_docs')
    out = out if out.is_absolute() else root / out
    if not _safe_to_replace(out): log(f"refusing to replace {out}: it is not an earlier docs build"); return 2
    rels = list_notebooks(nbs)
    log(f"{len(rels)} notebook(s) in {nbs.relative_to(root) if nbs.is_relative_to(root) else nbs}")
    errors = process_notebooks(root, nbs, rels, force=force, workers=workers) if rels else {}
    t1 = time.time()
    for rel, err in errors.items(): log(f"nbdev processing FAILED for {rel}:\n{err[-4000:]}")
    ok = {r.as_posix() for r in rels if r.as_posix() not in errors and (root / '_proc' / r).exists()}
    src = root / SRC_DIR
    problems, notes, plotly_pages = write_source_tree(root, src, rels, ok, settings)
    for n in notes: log(f"note: {n}")
    for p in problems: log(f"PROBLEM: {p}")
    t2 = time.time()
    tmp_out = root / '_build' / 'docs_html'
    if tmp_out.exists(): shutil.rmtree(tmp_out)
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-E', '-d', str(root / DOCTREES), str(src), str(tmp_out)]
    if strict: cmd[3:3] = ['-W', '--keep-going']
    if workers > 1 and len(rels) > 4: cmd[3:3] = ['-j', str(workers)]
    rc = subprocess.run(cmd, cwd=root).returncode
    t3 = time.time()
    atlas_problems = write_atlas_site(root, tmp_out) if (tmp_out / 'index.html').exists() else []
    for p in atlas_problems: log(f"PROBLEM: {p}")
    problems += atlas_problems
    t4 = time.time()
    if (tmp_out / 'index.html').exists():
        if out.exists(): shutil.rmtree(out)
        shutil.move(str(tmp_out), str(out))
        (out / '.nojekyll').touch()
    log(f"nbdev processing {t1 - t0:.1f}s, conversion {t2 - t1:.1f}s, sphinx {t3 - t2:.1f}s, atlas {t4 - t3:.1f}s; "
        f"{len(ok)} page(s), plotly on {len(plotly_pages)} -> {out}")
    failed = bool(errors) or rc != 0 or (strict and bool(problems))
    if failed:
        log("FAILED: " + '; '.join(filter(None, [f"{len(errors)} notebook(s) failed nbdev processing" if errors else '',
                                                 f"{len(problems)} page problem(s)" if problems else '',
                                                 f"sphinx exit status {rc}" if rc else ''])))
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------
# Serving

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args): pass


def make_server(directory: Path, port: int = 0, quiet: bool = True) -> http.server.ThreadingHTTPServer:
    "An HTTP server for `directory` on 127.0.0.1 (port 0: any free port)."
    handler = functools.partial(QuietHandler if quiet else http.server.SimpleHTTPRequestHandler, directory=str(directory))
    return http.server.ThreadingHTTPServer(('127.0.0.1', port), handler)


def serve(directory: Path, port: int = 8000) -> None:
    if not (directory / 'index.html').exists(): raise SystemExit(f"no site in {directory}: build it first")
    srv = make_server(directory, port, quiet=False)
    print(f"Serving {directory} at http://127.0.0.1:{srv.server_address[1]}/  (Ctrl-C stops)", flush=True)
    try: srv.serve_forever()
    except KeyboardInterrupt: pass
    finally: srv.server_close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', help='output folder (default: doc_path from settings.ini, _docs)')
    ap.add_argument('--force', action='store_true', help='reprocess every notebook (ignore the _proc cache)')
    ap.add_argument('--no-strict', action='store_true', help='do not fail on Sphinx warnings or page problems')
    ap.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1), help='parallel processes')
    ap.add_argument('--serve', action='store_true', help='serve the site on 127.0.0.1 after building')
    ap.add_argument('--no-build', action='store_true', help='with --serve: serve what is already built')
    ap.add_argument('--port', type=int, default=8000)
    a = ap.parse_args(argv)
    out = Path(a.out).resolve() if a.out else ROOT / read_settings().get('doc_path', '_docs')
    rc = 0
    if not (a.serve and a.no_build):
        rc = build(ROOT, out, force=a.force, strict=not a.no_strict, workers=a.workers)
    if a.serve:
        if rc: log("build failed; serving what was built")
        serve(out, a.port)
    return rc


if __name__ == '__main__':
    sys.exit(main())
