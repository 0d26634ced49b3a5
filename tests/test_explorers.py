"""`neuronlens explore` and `neuronlens atlas` from the installed command line."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import ROOT

EXE = Path(sys.executable).parent / 'neuronlens'
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}


def test_explore_starts_jupyterlab_and_prints_the_url(tmp_path):
    env = {**ENV, 'JUPYTER_CONFIG_DIR': str(tmp_path / 'cfg'), 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'), 'IPYTHONDIR': str(tmp_path / 'ipy')}
    proc = subprocess.Popen([str(EXE), 'explore', '--dir', str(tmp_path / 'explore'), '--cache', str(tmp_path / 'cache')],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, start_new_session=True)
    try:
        url = proc.stdout.readline().strip()   # printed once the server answers
        assert url.startswith('http://127.0.0.1:') and '/lab/tree/explorers.ipynb?token=' in url, (url, proc.stderr.read()[-2000:] if proc.poll() is not None else '')
        status = url.split('/lab', 1)[0] + '/api/status?token=' + url.rsplit('token=', 1)[1]
        with urllib.request.urlopen(status, timeout=10) as r: assert r.status == 200
        nb = json.loads((tmp_path / 'explore' / 'explorers.ipynb').read_text())
        src = '\n'.join(c['source'] for c in nb['cells'])
        assert 'second_order_explorer' in src and 'multimodal_explorer' in src and str(tmp_path / 'cache') in src
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL)


def test_explore_bad_option_is_one_line(tmp_path):
    res = subprocess.run([str(EXE), 'explore', '--n-scenes', '3', '--dir', str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert res.returncode == 1 and res.stderr.strip().count('\n') == 0 and '--n-scenes' in res.stderr, res.stderr


def test_atlas_command_writes_an_offline_site(tmp_path):
    t = time.time()
    res = subprocess.run([str(EXE), 'atlas', '--out', str(tmp_path / 'site'), '--cache', str(tmp_path / 'cache'), '--n-scenes', '32',
                          '--n-neurons', '3', '--records'], capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    site = tmp_path / 'site'
    assert res.stdout.strip().endswith('index.html')
    pages = sorted(p.name for p in site.glob('*.html'))
    assert len(pages) == 4 and (site / 'plotly.min.js').exists() and len(list((site / 'records').glob('*.safetensors'))) == 3, pages
    index = (site / 'index.html').read_text()
    assert all(f'href="{p}"' in index for p in pages if p != 'index.html')
    assert time.time() - t < 120
