"""Helpers shared by the benchmark scripts: what machine ran them, and device synchronisation."""
import datetime, os, platform

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
