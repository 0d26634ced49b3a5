"""Helpers shared by the benchmark scripts: what machine ran them, device synchronisation, peak memory, results tables."""
import datetime, os, platform, time
from pathlib import Path

import torch


def cpu_model() -> str:
    "The CPU's model name (Linux), else what platform reports."
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or 'unknown'


def hardware(device: torch.device) -> dict:
    "Machine, software versions, load and date for a results file."
    d = dict(device=str(device), cpu=cpu_model(), usable_cores=len(os.sched_getaffinity(0)), torch_threads=torch.get_num_threads(),
             torch=torch.__version__, python=platform.python_version(), load_avg_at_start=[round(x, 2) for x in os.getloadavg()],
             date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'))
    from neuronlens.core import cpu_capability
    d.update(cpu_capability())  # torch's CPU dispatch level (AVX2, AVX512, ...) and whether bf16 is native
    if device.type == 'cuda': d['gpu'] = torch.cuda.get_device_name(device)
    return d


def sync(device: torch.device):
    "Wait for queued GPU work (no-op on CPU), so timings cover it."
    if device.type == 'cuda': torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, seconds: float = 2.0) -> float:
    "Sustained GFLOP/s of one large [n, n] @ [n, n] product: the device's practical ceiling for dense math in `dtype`."
    a = torch.randn(n, n, device=device).to(dtype); b = torch.randn(n, n, device=device).to(dtype)
    a @ b; sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b; reps += 1
        sync(device)
    return round(2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9, 1)


class PeakMemory:
    """Peak memory (MiB) during the block, one definition for every benchmark: `rss_mib` is the process's peak
    resident memory while the block ran (Linux VmHWM, reset on entry through /proc/self/clear_refs, so it
    counts what is resident, model included, plus what the block adds; `added_rss_mib` is that peak less the
    resident memory at entry); on CUDA `cuda_mib` is the peak of allocated tensor memory during the block."""
    def __init__(self, device): self.device = torch.device(device)
    @staticmethod
    def _status(field):
        try:
            for line in open('/proc/self/status'):
                if line.startswith(field + ':'): return round(int(line.split()[1]) / 1024, 1)
        except OSError: pass
        return None
    def __enter__(self):
        try: Path('/proc/self/clear_refs').write_text('5')  # resets VmHWM (Linux)
        except OSError: pass
        self.start_rss_mib = self._status('VmRSS')
        if self.device.type == 'cuda': torch.cuda.reset_peak_memory_stats(self.device)
        return self
    def __exit__(self, *exc):
        self.rss_mib = self._status('VmHWM')
        self.added_rss_mib = None if self.rss_mib is None or self.start_rss_mib is None else round(self.rss_mib - self.start_rss_mib, 1)
        self.cuda_mib = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1) if self.device.type == 'cuda' else None

    @property
    def mib(self):
        "The number a results table shows: CUDA tensor peak on a GPU, else peak RSS."
        return self.cuda_mib if self.cuda_mib is not None else self.rss_mib


def add_table_row(md: Path, row: str, header: str):
    """Put `row` at the end of the first table of the markdown file `md` (notes written below the table stay
    below it); a new file starts with `header` (title, blank line, table head)."""
    md = Path(md)
    lines = md.read_text().splitlines() if md.exists() else header.rstrip('\n').splitlines()
    sep = next((i for i, l in enumerate(lines) if l.startswith('|---')), None)
    if sep is None: lines += ['', *header.rstrip('\n').splitlines()[-2:]]; sep = len(lines) - 1
    end = sep + 1
    while end < len(lines) and lines[end].startswith('|'): end += 1
    lines.insert(end, row.rstrip('\n'))
    tmp = md.with_suffix('.md.tmp'); tmp.write_text('\n'.join(lines) + '\n'); os.replace(tmp, md)
