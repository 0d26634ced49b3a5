"""Attribution throughput at the paper's image-token count: SmolLM2-135M with 196 image tokens (a 14 x 14 patch grid,
one soft token per patch, as BEiT-large gives LiMBeR), against a plain forward-backward of the same batch.

Both runs are made in one process, on the same images, prompts and model, one after the other:

  * attribution: `attribute` (activation x gradient of the concept logit for every MLP unit of every layer at every
    image token, the top 100 units per image kept), images/s and peak memory;
  * forward-backward: the same rows (left-padded [196 image tokens] + prompt) through the LM, and the gradient of the
    concept logit with respect to the input embeddings, without recording any activation: the floor any
    gradient-based attribution pays;
  * the ratio of the two (attribution images/s over forward-backward images/s: 1.0 means the bookkeeping is free).

The image encoder is a random 14 x 14-patch ToyViT and the projection a random Linear: their cost is a few percent of
the LM's and the throughput does not depend on their weights. Peak memory: the process's peak RSS during each
measurement (Linux VmHWM, reset through /proc/self/clear_refs), and torch.cuda.max_memory_allocated on a GPU.

Usage:
  python benchmarks/bench_attribution.py [--device cpu|cuda] [--n-images 32] [--batch-size 8] [--repeats 2] [--out benchmarks/results]
  python benchmarks/bench_attribution.py --quick      # tiny random LM, 4 images: checks the script in seconds
Writes attribution_<device>.json and .md (with --quick: under $TMPDIR unless --out is given).
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path

import torch

from benchcommon import PeakMemory, hardware, sync

from neuronlens.limber.attribution import attribute, attribution_inputs, last_logits, targets_from_captions
from neuronlens.limber.captioner import Captioner, ImageProjection, tiny_encoder, tiny_lm
from neuronlens.models.lm import load_causal_lm

CAPTIONS = ['a red circle on the left', 'a blue square in the picture', 'a green star at the top', 'a yellow heart']


def build(quick: bool, device: torch.device) -> Captioner:
    "SmolLM2-135M (or the tiny random LM) behind a random 14 x 14-patch encoder and a random projection: 196 tokens."
    lm = tiny_lm() if quick else load_causal_lm('smollm2-135m')
    enc = tiny_encoder(image_size=56, patch_size=4)  # a 14 x 14 grid
    torch.manual_seed(0)
    proj = ImageProjection(enc.d_out, lm.d_model, None, enc.grid)
    return Captioner(enc, lm, proj, 'A picture of').to(device)


def forward_backward(cap: Captioner, x: torch.Tensor, targets, batch_size: int):
    "The plain floor: the same rows forward, and the concept logit's gradient back to the input embeddings."
    ok = targets.valid.nonzero()[:, 0]
    for lo in range(0, len(ok), batch_size):
        idx = ok[lo : lo + batch_size]
        with torch.no_grad():
            soft = cap.image_tokens(x[idx])
        ab = attribution_inputs(cap, soft, [targets.prefixes[i] for i in idx])
        emb = ab.embeds.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = last_logits(cap.lm, ab, emb)
            y = logits.gather(1, targets.token_ids[idx].to(logits.device)[:, None])
            torch.autograd.grad(y.sum(), emb)


def timed(fn, device, repeats: int) -> dict:
    "Median seconds of `fn()` over `repeats` runs, and the peak memory over all of them."
    ts = []
    with PeakMemory(device) as pm:
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            ts.append(time.perf_counter() - t)
    return dict(seconds=round(statistics.median(ts), 3), peak_rss_mib=pm.rss_mib, peak_cuda_mib=pm.cuda_mib)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--n-images', type=int, default=None, help='images per timed run (default: 32; --quick: 4)')
    ap.add_argument('--batch-size', type=int, default=8)
    ap.add_argument('--repeats', type=int, default=3, help='timed runs of each, interleaved (the median is reported)')
    ap.add_argument('--quick', action='store_true', help='the tiny random LM and 4 images: a check of the script')
    ap.add_argument('--out', type=Path, default=None)
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    n = a.n_images or (4 if a.quick else 32)
    cap = build(a.quick, device)
    x = torch.randint(0, 256, (n, 3, 56, 56), dtype=torch.uint8)
    targets = targets_from_captions(cap.lm.tokenizer, [CAPTIONS[i % len(CAPTIONS)] for i in range(n)])
    n_valid = int(targets.valid.sum())
    with torch.no_grad():
        soft = cap.image_tokens(x[:1])
    tokens = int(attribution_inputs(cap, soft, targets.prefixes[:1]).mask.sum())
    attribute(cap, x[:2], targets.subset([0, 1]), batch_size=2)  # warm-up
    forward_backward(cap, x[:2], targets.subset([0, 1]), 2)
    runs = {'attribution': lambda: attribute(cap, x, targets, batch_size=a.batch_size),
            'forward-backward': lambda: forward_backward(cap, x, targets, a.batch_size)}
    timings = {name: [] for name in runs}
    for _ in range(a.repeats):  # interleaved, so a change of machine load falls on both runs alike
        for name, fn in runs.items():
            timings[name].append(timed(fn, device, 1))
    rows = []
    for name, ts in timings.items():
        r = dict(seconds=round(statistics.median(t['seconds'] for t in ts), 3),
                 peak_rss_mib=max(t['peak_rss_mib'] for t in ts), peak_cuda_mib=ts[0]['peak_cuda_mib'])
        rows.append(dict(run=name, images=n_valid, batch=a.batch_size, images_per_s=round(n_valid / r['seconds'], 3), **r))
    ratio = round(rows[0]['images_per_s'] / rows[1]['images_per_s'], 3)
    lm = cap.lm
    res = dict(hardware=hardware(device), lm='tiny random Llama (--quick)' if a.quick else 'smollm2-135m',
               n_layers=lm.n_layers, d_mlp=lm.d_mlp, image_tokens=soft.shape[1], tokens_per_row=tokens,
               dtype='float32', rows=rows, attribution_over_forward_backward=ratio)
    print(json.dumps(res, indent=1))
    out = a.out or (Path(tempfile.gettempdir()) / 'nl-bench-attribution' if a.quick else Path(__file__).parent / 'results')
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"attribution_{device.type}{'_quick' if a.quick else ''}"
    stem.with_suffix('.json').write_text(json.dumps(res, indent=1))
    h = res['hardware']
    md = [f"# Attribution throughput, 196 image tokens ({device.type})", '',
          f"{h['cpu']}, {h['usable_cores']} cores, torch {h['torch']}{', ' + h['gpu'] if 'gpu' in h else ''}; "
          f"load at start {h['load_avg_at_start']}; {h['date']}", '',
          f"{res['lm']}: {lm.n_layers} layers x {lm.d_mlp} units, {res['image_tokens']} image tokens, "
          f"{tokens} tokens per row, float32, batch {a.batch_size}, {n_valid} images, median of {a.repeats} interleaved runs.", '',
          '| run | images/s | seconds | peak RSS MiB | peak CUDA MiB |', '|---|---|---|---|---|']
    md += [f"| {r['run']} | {r['images_per_s']} | {r['seconds']} | {r['peak_rss_mib']} | {r['peak_cuda_mib']} |" for r in rows]
    md += ['', f"Attribution runs at {ratio} of a plain forward-backward of the same batch."]
    stem.with_suffix('.md').write_text('\n'.join(md) + '\n')
    print(stem.with_suffix('.md'))


if __name__ == '__main__':
    main()
