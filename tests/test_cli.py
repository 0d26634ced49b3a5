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
    assert 'neuronlens/core.py' in names and 'neuronlens/cli.py' in names
    ep = next(n for n in names if n.endswith('entry_points.txt'))
    assert 'neuronlens = neuronlens.cli:main' in zipfile.ZipFile(whl).read(ep).decode()
    shipped = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / 'neuronlens' / 'zoo').glob('*.safetensors'))
    missing = [s for s in shipped if s not in names]
    assert not missing, f"zoo weights not packaged: {missing}"
