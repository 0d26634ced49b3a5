"""Time the main job (`neuronlens demo`) as a user runs it: a first run on an empty cache (fresh clone: the SmolLM2
dequantization, every section computed), then a second run reusing that cache. Per-section times come from the
job's own progress lines on stderr; the sections present are recorded, since other modules add theirs.

    python benchmarks/bench_demo.py [--n-scenes 256] [--keep]
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchcommon import hardware  # noqa: E402

RESULTS = Path(__file__).parent / 'results'
EXE = Path(sys.executable).parent / 'neuronlens'
LINE = re.compile(r'^\[(\d+)/(\d+)\] (\S+) \(started at (\d+)s\)')


def run_once(cache: Path, out: Path, n_scenes: int) -> dict:
    "One `neuronlens demo` run: wall time, exit status, and each section's start (from the progress lines)."
    env = {**os.environ, 'NEURONLENS_CACHE': str(cache), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    t0 = time.perf_counter()
    res = subprocess.run([str(EXE), 'demo', '--cache', str(cache), '--out', str(out), '--n-scenes', str(n_scenes)],
                         capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    starts = [(m.group(3), int(m.group(4))) for m in map(LINE.match, res.stderr.replace('\r', '\n').splitlines()) if m]
    m = re.search(r'report written to (\S+) after (\d+)s', res.stderr)
    end = int(m.group(2)) if m else None
    secs = {name: (nxt - s if nxt is not None else None)
            for (name, s), nxt in zip(starts, [s for _, s in starts[1:]] + [end])}
    return dict(wall_s=round(wall, 1), returncode=res.returncode, sections_s=secs, job_s=end,
                startup_s=None if end is None else round(wall - end, 1),
                error=None if res.returncode == 0 else res.stderr.strip().splitlines()[-1][:500])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n-scenes', type=int, default=256)
    ap.add_argument('--keep', action='store_true', help='keep the cache folder')
    a = ap.parse_args()
    hw = hardware(torch.device('cpu'))
    root = Path(tempfile.mkdtemp(prefix='bench-demo-'))
    try:
        first = run_once(root / 'cache', root / 'out', a.n_scenes)
        second = run_once(root / 'cache', root / 'out', a.n_scenes)
    finally:
        if not a.keep: shutil.rmtree(root, ignore_errors=True)
    row = dict(**hw, n_scenes=a.n_scenes, sections=list(first['sections_s']), first=first, second=second)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / 'demo_cpu.json').write_text(json.dumps(row, indent=1))
    lines = ['# `neuronlens demo`: first run (empty cache) and second run (cache reused)', '',
             f"{hw['date']}, {hw['cpu']}, {hw['usable_cores']} cores, torch {hw['torch']}, CPU capability {hw['cpu_capability']}, "
             f"native bf16 {hw['cpu_bf16_native']}, load average at start {hw['load_avg_at_start']}, {a.n_scenes} scenes.", '',
             '| section | first run (s) | second run (s) |', '|---|---|---|']
    for name in first['sections_s']:
        lines.append(f"| {name} | {first['sections_s'][name]} | {second['sections_s'].get(name)} |")
    lines += [f"| **whole command (wall, incl. start-up)** | **{first['wall_s']}** | **{second['wall_s']}** |",
              f"| start-up (imports, plug-in registration) | {first['startup_s']} | {second['startup_s']} |", '',
              f"Exit status: first {first['returncode']}, second {second['returncode']}."
              + (f" First run error: {first['error']}" if first['error'] else '')
              + (f" Second run error: {second['error']}" if second['error'] else ''), '',
              'Section times are whole seconds from the job\'s own progress lines (started-at differences).']
    (RESULTS / 'demo.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
