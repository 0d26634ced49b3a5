"""Multimodal neurons: attribution throughput (batched vs a per-image loop) and LiMBeR training steps with cached
features vs re-running the encoder, with peak memory, on the shipped default (SmolLM2-135M + toy encoder + projection).

Every ratio compares runs made in the same process, on the same images and model.

  * attribution: `multimodal.attribute` (activation x gradient of the concept logit for all 30 x 1,536 units at every
    image token) on N held-out toy scenes, batch B vs batch 1 (a Python loop over images). Target: >= 5x on CPU.
    Both in float32 and with the whole captioner cast to bfloat16 (the loop in the same dtype as the batch), with
    the top-10 units' agreement with float32, next to the device's dense-matmul ceiling measured in the same run
    (the speed-up over a loop can be at most the ceiling over the loop's achieved GFLOP/s).
  * training: one LiMBeR optimizer step (batch 32 captions, 16 image tokens) from cached patch features vs one that
    first draws the scenes and runs the frozen encoder (toy encoder at 64 px; EfficientNet-Lite0 at 224 px).
  * peak memory: the process's peak RSS during each measurement (Linux: reset through /proc/self/clear_refs), and
    torch.cuda.max_memory_allocated on a GPU.

Usage: python benchmarks/bench_multimodal.py [--device cpu] [--n-images 32] [--batch-size 16] [--steps 3] [--out benchmarks/results]
Writes multimodal_<device>.json and .md.
"""
import argparse, copy, json, os, statistics, time
from pathlib import Path

import torch

from benchcommon import PeakMemory, cpu_model, hardware, matmul_gflops, sync

from neuronlens.limber.attribution import attribute, attribution_inputs, targets_from_captions
from neuronlens.limber import projection as P
from neuronlens.limber.captioner import Captioner, ImageProjection, caption_loss, pool_patches
from neuronlens.toy.world import sample_batch, sample_scene, split_seeds
from neuronlens.core import TensorCache, cpu_bf16_native


def bench_attribution(cap, x, targets, device, batch_size: int, dtype: str = 'float32', ref=None) -> list:
    rows = []
    attribute(cap, x[:2], targets.subset([0, 1]), batch_size=2)  # warm-up
    for b in (batch_size, 1):
        with PeakMemory(device) as pm:
            sync(device); t = time.perf_counter()
            att = attribute(cap, x, targets, batch_size=b)
            sync(device); dt = time.perf_counter() - t
        rows.append(dict(dtype=dtype, batch=b, images=len(x), seconds=round(dt, 2), images_per_s=round(len(x) / dt, 3), peak_rss_mib=pm.rss_mib, peak_cuda_mib=pm.cuda_mib))
        if b == batch_size: batched = att
        elif dtype == 'float32':  # the loop gives the same answer
            assert torch.allclose(att.unit_scores, batched.unit_scores, rtol=1e-3, atol=1e-4), 'batched and per-image attribution disagree'
    if ref is not None:  # agreement of a lower-precision run with float32: shared top-10 units per image
        ok = ref.valid.nonzero()[:, 0].tolist()
        rows[0]['top10_shared_with_float32'] = round(sum(len(set(ref.top_units[i, :10].tolist()) & set(batched.top_units[i, :10].tolist())) for i in ok) / (10 * len(ok)), 3)
    rows[0]['speedup_vs_loop'] = round(rows[0]['images_per_s'] / rows[1]['images_per_s'], 2)
    # arithmetic: forward + input-gradient backward ~ 4 x (non-embedding parameters) FLOPs per token
    with torch.no_grad(): tokens = float(attribution_inputs(cap, cap.image_tokens(x), targets.prefixes).mask.sum(1).float().mean())
    n_params = sum(p.numel() for n, p in cap.lm.model.named_parameters() if 'embed' not in n and 'lm_head' not in n)
    for r in rows: r.update(tokens_per_image=round(tokens, 1), gflop_per_image=round(4 * n_params * tokens / 1e9, 2), achieved_gflops=round(4 * n_params * tokens * r['images_per_s'] / 1e9, 1))
    return rows, batched


def bench_training(encoder_name: str, lm, device, steps: int, size: int) -> dict:
    enc = P.load_encoder(encoder_name)
    cap = Captioner(enc, lm, ImageProjection(enc.d_out, lm.d_model, 16, enc.grid)).to(device)
    src = P.SceneSource('train', 256, size=64)
    feats = P.cache_features(enc, src, TensorCache(Path(os.environ.get('TMPDIR', '/tmp')) / 'nl-bench-cache'), 16)
    opt = torch.optim.AdamW(cap.projection.parameters(), lr=1e-3)
    bf16 = device.type == 'cpu' and cpu_bf16_native()  # bf16 autocast only where the CPU computes bf16 natively
    def step(i, cached: bool):
        idx = torch.arange(i * 32, (i + 1) * 32) % src.n
        if cached: f = feats[idx].to(device)
        else:
            imgs = torch.from_numpy(sample_batch([src.seeds[j] for j in idx.tolist()], 64, targets=False)['image']).permute(0, 3, 1, 2)
            with torch.no_grad(): f = pool_patches(enc.encode(imgs.to(device)), enc.grid, 16)
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            loss = caption_loss(cap, cap.projection(f.to(device)), src.captions(idx.tolist()))
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    out = dict(encoder=encoder_name, encoder_input_px=list(enc.preprocess.size), batch=32, n_tokens=16, autocast_bf16=bf16)
    step(0, True); step(0, False)  # warm-up
    for cached in (True, False):
        ts = []
        with PeakMemory(device) as pm:
            for i in range(steps):
                sync(device); t = time.perf_counter(); step(i + 1, cached); sync(device); ts.append(time.perf_counter() - t)
        key = 'cached_features' if cached else 'rerun_encoder'
        out[key] = dict(s_per_step=round(statistics.median(ts), 3), steps_per_s=round(1 / statistics.median(ts), 3), peak_rss_mib=pm.rss_mib, peak_cuda_mib=pm.cuda_mib)
    out['speedup_cached'] = round(out['rerun_encoder']['s_per_step'] / out['cached_features']['s_per_step'], 2)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--n-images', type=int, default=32)
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--out', type=Path, default=Path(__file__).parent / 'results')
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    res = dict(hardware=hardware(device), dtype='float32 weights' + (' (bf16 autocast in training)' if device.type == 'cpu' and cpu_bf16_native() else ''))
    cap = P.load_captioner('toy-encoder').to(device)
    seeds = list(split_seeds('test', a.n_images))
    x = torch.from_numpy(sample_batch(seeds, 64, targets=False)['image']).permute(0, 3, 1, 2)
    targets = targets_from_captions(cap.lm.tokenizer, [sample_scene(s).caption for s in seeds])
    res['matmul_ceiling_gflops'] = {'float32': matmul_gflops(device), 'bfloat16': matmul_gflops(device, torch.bfloat16)}
    rows, ref = bench_attribution(cap, x, targets, device, a.batch_size)
    rows16, _ = bench_attribution(copy.deepcopy(cap).to(torch.bfloat16), x, targets, device, a.batch_size, 'bfloat16', ref)
    res['attribution'] = rows + rows16
    for r in res['attribution']: r['share_of_ceiling'] = round(r['achieved_gflops'] / res['matmul_ceiling_gflops'][r['dtype']], 2)
    print(json.dumps(res, indent=1))
    res['training'] = [bench_training(e, cap.lm, device, a.steps, 64) for e in ('toy-encoder', 'efficientnet-lite0')]
    print(json.dumps(res['training'], indent=1))
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / f'multimodal_{device.type}'
    stem.with_suffix('.json').write_text(json.dumps(res, indent=1))
    h = res['hardware']
    md = [f"# Multimodal neurons benchmark ({device.type})", '',
          f"{h['cpu']}, {h['usable_cores']} cores, torch {h['torch']}{', ' + h['gpu'] if 'gpu' in h else ''}; load at start {h['load_avg_at_start']}; {h['date']}", '',
          f"## Attribution (SmolLM2-135M, 30 x 1,536 units, 16 image tokens, {a.n_images} held-out scenes)", '',
          '| dtype | batch | images/s | seconds | achieved GFLOP/s | share of matmul ceiling | peak RSS MiB | peak CUDA MiB | speed-up vs loop | top-10 shared with float32 |',
          '|---|---|---|---|---|---|---|---|---|---|']
    md += [f"| {r['dtype']} | {r['batch']} | {r['images_per_s']} | {r['seconds']} | {r['achieved_gflops']} | {r['share_of_ceiling']} | {r['peak_rss_mib']} | {r['peak_cuda_mib']} | "
           f"{r.get('speedup_vs_loop', '')} | {r.get('top10_shared_with_float32', '')} |" for r in res['attribution']]
    c = res['matmul_ceiling_gflops']; loop = {r['dtype']: r for r in res['attribution'] if r['batch'] == 1}
    md += ['', f"About {res['attribution'][0]['gflop_per_image']} GFLOP per image ({res['attribution'][0]['tokens_per_image']} tokens, forward + input-gradient backward). "
           f"Dense-matmul ceiling measured in this run (one 2048 x 2048 product): {c['float32']} GFLOP/s float32, {c['bfloat16']} GFLOP/s bfloat16. "
           f"No batching can beat the ceiling, so the speed-up over the per-image loop is at most ceiling / loop GFLOP/s: "
           + ', '.join(f"{k} {c[k] / max(loop[k]['achieved_gflops'], 1e-9):.1f}x" for k in loop) + '.']
    md += ['', '## LiMBeR training step (batch 32, 16 image tokens)', '', '| encoder | cached features s/step | re-run encoder s/step | speed-up | peak RSS MiB (cached / re-run) |', '|---|---|---|---|---|']
    md += [f"| {r['encoder']} ({r['encoder_input_px'][0]} px) | {r['cached_features']['s_per_step']} | {r['rerun_encoder']['s_per_step']} | {r['speedup_cached']} | {r['cached_features']['peak_rss_mib']} / {r['rerun_encoder']['peak_rss_mib']} |" for r in res['training']]
    stem.with_suffix('.md').write_text('\n'.join(md) + '\n')
    print(stem.with_suffix('.md'))


if __name__ == '__main__':
    main()
