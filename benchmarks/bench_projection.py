"""LiMBeR projection: step times, feature caching and captioning throughput, and the held-out caption metrics of the trained projections.

Two parts:
  * `speed` (default): on the given device, with SmolLM2-135M and the toy encoder,
      - seconds per training step (`caption_loss` forward + backward + AdamW on the projection) for batch 16/32,
        16/64 image tokens, fp32 and bf16 autocast (median of `--steps` timed steps after one warm-up);
      - feature caching (`cache_features`) throughput in images/s for toy-encoder (64 px) and EfficientNet-Lite0 (224 px);
      - greedy captioning throughput (`Captioner.caption`, 12 new tokens, batch 64) in images/s.
    Writes projection_speed_<device>.json/.md in --out.
  * `results`: collects the cards of the shipped projections (neuronlens/zoo/projection-*.json) and the run summaries
    (runs/projection-*/summary.json) into projection.json/.md: held-out shape/colour/size/position accuracy of greedy
    captions of single-object test scenes, per encoder (trained toy encoder, EfficientNet-Lite0, random-init encoder).

Usage: python benchmarks/bench_projection.py [speed|results] [--device cpu] [--steps 3] [--out benchmarks/results]
"""
import argparse, datetime, json, os, platform, statistics, sys, time
from pathlib import Path

import torch

from benchcommon import cpu_model, hardware, sync

from neuronlens.limber import projection as P
from neuronlens.limber.captioner import Captioner, ImageProjection, caption_loss
from neuronlens.models import zoo as models
from neuronlens.models.lm import load_smollm2
pass
from neuronlens.core import TensorCache


def step_times(cap, src, feats_by_n, device, batch_sizes=(16, 32), n_steps=3) -> list:
    "Seconds per LiMBeR training step for each (batch, n_tokens, dtype)."
    rows = []
    for n_tokens, feats in feats_by_n.items():
        cap.projection = ImageProjection(cap.encoder.d_out, cap.lm.d_model, n_tokens, cap.encoder.grid).to(device)
        opt = torch.optim.AdamW(cap.projection.parameters(), lr=1e-3)
        for bs in batch_sizes:
            for bf16 in (False, True):
                ts = []
                for s in range(n_steps + 1):
                    idx = torch.arange(s * bs, (s + 1) * bs) % len(feats)
                    sync(device); t = time.perf_counter()
                    with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                        loss = caption_loss(cap, cap.projection(feats[idx].to(device)), src.captions(idx.tolist()))
                    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
                    sync(device); ts.append(time.perf_counter() - t)
                rows.append(dict(batch=bs, n_tokens=n_tokens, dtype='bf16 autocast' if bf16 else 'fp32', s_per_step=round(statistics.median(ts[1:]), 3),
                                 captions_per_s=round(bs / statistics.median(ts[1:]), 1), load_avg=round(os.getloadavg()[0], 2)))
                print(rows[-1], flush=True)
    return rows


def encode_rate(encoder, n, device, tmp) -> dict:
    "Images/s of `cache_features` (a cold cache) and seconds of the warm re-read."
    encoder.model.to(device)
    src = P.SceneSource('valid', n)
    sync(device); t = time.perf_counter()
    P.cache_features(encoder, src, TensorCache(tmp), n_tokens=16)
    sync(device); cold = time.perf_counter() - t
    t = time.perf_counter(); P.cache_features(encoder, src, TensorCache(tmp), n_tokens=16); warm = time.perf_counter() - t
    return dict(encoder=encoder.name, images=n, images_per_s=round(n / cold, 1), cold_s=round(cold, 2), warm_read_s=round(warm, 3))


def speed(args):
    import tempfile
    device = torch.device(args.device)
    hw = hardware(device)
    lm = load_smollm2(); lm.model.to(device)
    enc = P.load_encoder('toy-encoder'); enc.model.to(device)
    cap = Captioner(enc, lm, ImageProjection(enc.d_out, lm.d_model, 16, enc.grid).to(device))
    src = P.SceneSource('train', 128)
    feats = {n: P.cache_features(enc, src, TensorCache(tempfile.mkdtemp()), n_tokens=n) for n in (16, 64)}
    steps = step_times(cap, src, feats, device, n_steps=args.steps)
    enc_rows = [encode_rate(e, args.n_encode, device, tempfile.mkdtemp()) for e in (enc, P.load_encoder('efficientnet-lite0'))]
    cap.projection = ImageProjection(enc.d_out, lm.d_model, 16, enc.grid).to(device)
    imgs = P.SceneSource('test', 64, n_objects=1).images(0, 64)
    cap.caption(imgs[:4]); sync(device); t = time.perf_counter(); cap.caption(imgs, max_new_tokens=12); sync(device)
    gen = dict(images=64, max_new_tokens=12, images_per_s=round(64 / (time.perf_counter() - t), 1))
    res = dict(hardware=hw, train_step=steps, cache_features=enc_rows, caption=gen)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    name = f'projection_speed_{device.type}'
    (out/f'{name}.json').write_text(json.dumps(res, indent=1))
    md = [f'# LiMBeR projection speed ({device.type})', '', f"{hw['cpu']}, {hw['usable_cores']} usable cores, torch {hw['torch']}, load at start {hw['load_avg_at_start']}"
          + (f", GPU {hw.get('gpu')}" if 'gpu' in hw else '') + f", {hw['date']}", '',
          'Training step: SmolLM2-135M frozen, toy-encoder features cached (pooled), projection trained with AdamW; median of the timed steps.', '',
          '| batch | image tokens | dtype | s/step | captions/s | load |', '|---|---|---|---|---|---|']
    md += [f"| {r['batch']} | {r['n_tokens']} | {r['dtype']} | {r['s_per_step']} | {r['captions_per_s']} | {r['load_avg']} |" for r in steps]
    md += ['', '| encoder | images | images/s (cold cache) | warm re-read (s) |', '|---|---|---|---|']
    md += [f"| {r['encoder']} | {r['images']} | {r['images_per_s']} | {r['warm_read_s']} |" for r in enc_rows]
    md += ['', f"Greedy captions (12 new tokens, batch 64): {gen['images_per_s']} images/s.", '',
           'The machine is shared with other jobs: the load column is the 1-minute load average after each measurement.']
    (out/f'{name}.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))


def results(args):
    rows = {}
    for p in sorted(models.zoo_dir().glob('projection-*.json')):
        c = json.loads(p.read_text())
        rows[f"{c['encoder']} (shipped)"] = dict(source=f'neuronlens/zoo/{p.name}', command=c.get('command'), steps=c.get('steps'), device=c.get('device'),
                                  train_seconds=c.get('train_seconds'), s_per_step=c.get('s_per_step'), metrics=c.get('metrics'),
                                  weights_bytes=(p.parent/f'{p.stem}.safetensors').stat().st_size)
    for p in sorted(Path('runs').glob('projection-*/summary.json')):
        s = json.loads(p.read_text()); e = p.parent.name.removeprefix('projection-')
        if s.get('metrics') and not any(r['metrics'] == s['metrics'] for r in rows.values()):  # runs not shipped (e.g. equal-budget baselines)
            rows[e] = dict(source=str(p), steps=s['steps'], device=s['device'], train_seconds=s['train_seconds'], s_per_step=s.get('s_per_step'), metrics=s['metrics'])
    if not rows: sys.exit('no shipped projections or run summaries found')
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'projection.json').write_text(json.dumps(rows, indent=1))
    keys = ('shape_acc', 'colour_acc', 'size_acc', 'position_acc', 'no_shape')
    md = ['# LiMBeR projections: held-out caption metrics', '',
          'Greedy captions ("A picture of" after 16 image tokens, SmolLM2-135M frozen) of single-object scenes from the toy world\'s '
          '*test* seeds, which training never sees. shape = the first noun is the object\'s shape; colour/size/position = the first word of '
          'that kind is the object\'s; no shape = the caption names no shape. Chance: shape 12.5%, colour 12.5%, size 50%, position 20%.', '',
          '| encoder | n | ' + ' | '.join(k.removesuffix('_acc').replace('_', ' ') for k in keys) + ' | steps | device | train time | s/step |',
          '|---' * (len(keys) + 6) + '|']
    for e, r in rows.items():
        m = r['metrics'] or {}
        md.append(f"| {e} | {m.get('n')} | " + ' | '.join(f"{m[k]:.1%}" if k in m else '' for k in keys)
                  + f" | {r['steps']} | {r['device']} | {(r['train_seconds'] or 0) / 60:.1f} min | {r['s_per_step'] or 0:.2f} |")
    md += ['', 'Example captions (first 4 test scenes):', '']
    for e, r in rows.items():
        for ex in (r['metrics'] or {}).get('examples', [])[:4]: md.append(f"- {e}: truth *{ex['truth']}* / caption *{ex['caption']}*")
    md += ['', 'Commands: ' + '; '.join(f"`{r['command']}`" for r in rows.values() if r.get('command'))]
    (out/'projection.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('part', nargs='?', default='speed', choices=['speed', 'results'])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--steps', type=int, default=3, help='timed training steps per setting (after one warm-up)')
    ap.add_argument('--n-encode', type=int, default=512, help='images for the feature-caching throughput')
    ap.add_argument('--out', default='benchmarks/results')
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    speed(a) if a.part == 'speed' else results(a)
