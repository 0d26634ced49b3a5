"""Every automatic dtype choice on CPU uses bfloat16 only where the CPU computes it natively (issue #16).

The capability is mocked both ways (the environment override `NEURONLENS_CPU_BF16`, and oneDNN's report with the
timed confirmation), and each consumer is checked: autocast for training, the batched OMP screen, the benchmark
rows' hardware fields. Explicit choices stay honoured.
"""
import sys
from unittest import mock

import pytest
import torch

from conftest import ROOT
from neuronlens import core as core
from neuronlens.lens import decompose as decompose


@pytest.fixture
def capability(monkeypatch):
    "Set the CPU's bf16 capability for one test: capability(True) / capability(False)."
    def set_(native: bool):
        monkeypatch.setenv('NEURONLENS_CPU_BF16', '1' if native else '0')
        core.cpu_bf16_native.cache_clear()
    yield set_
    core.cpu_bf16_native.cache_clear()


def test_report_and_timed_product(monkeypatch):
    monkeypatch.delenv('NEURONLENS_CPU_BF16', raising=False)
    core.cpu_bf16_native.cache_clear()
    try:
        with mock.patch('torch.ops.mkldnn._is_mkldnn_bf16_supported', return_value=True), mock.patch.object(core, '_bf16_speed_ratio', return_value=1.7):
            assert core.cpu_bf16_native() and core.autocast_dtype('cpu') == torch.bfloat16
        core.cpu_bf16_native.cache_clear()
        with mock.patch('torch.ops.mkldnn._is_mkldnn_bf16_supported', return_value=True), mock.patch.object(core, '_bf16_speed_ratio', return_value=0.003):
            assert not core.cpu_bf16_native()  # the 350x trap: reported, but emulated
        core.cpu_bf16_native.cache_clear()
        with mock.patch('torch.ops.mkldnn._is_mkldnn_bf16_supported', return_value=False):
            assert not core.cpu_bf16_native() and core.autocast_dtype('cpu') == torch.float32
    finally: core.cpu_bf16_native.cache_clear()


@pytest.mark.parametrize('native', [True, False])
def test_autocast_follows_capability(capability, native):
    capability(native)
    want = torch.bfloat16 if native else torch.float32
    assert core.autocast_dtype('cpu') == want
    with core.autocast('cpu'): y = torch.ones(4, 4) @ torch.ones(4, 4)
    assert y.dtype == want
    with core.autocast('cpu', torch.bfloat16): assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16  # explicit wins


@pytest.mark.parametrize('native', [True, False])
def test_omp_screen_default_follows_capability(capability, native):
    capability(native)
    seen = []
    real = decompose._omp_chunk
    def spy(Yc, D, k, dn, Db, threads):
        seen.append(Db is not None)
        return real(Yc, D, k, dn, Db, threads)
    g = torch.Generator().manual_seed(0)
    D = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    Y = torch.randn(5, 16, generator=g)
    with mock.patch.object(decompose, '_omp_chunk', spy):
        auto = decompose.omp_batched(Y, D, k=4)
        decompose.omp_batched(Y, D, k=4, screen=True)   # explicit choices are honoured whatever the CPU
        decompose.omp_batched(Y, D, k=4, screen=False)
    assert seen == [native, True, False]
    assert torch.equal(auto.indices, decompose.omp_batched(Y, D, k=4, screen=not native).indices)  # same picks either way


def test_benchmark_rows_record_capability(capability):
    capability(False)
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    from benchcommon import hardware
    hw = hardware(torch.device('cpu'))
    assert hw['cpu_capability'] == torch.backends.cpu.get_cpu_capability() and hw['cpu_bf16_native'] is False
