"""Helpers shared by the benchmark scripts: what machine ran them, and device synchronisation."""
import datetime, os, platform, time

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
