"""Multimodal neurons vs layer-matched random units on held-out toy scenes, every measure with a 95% bootstrap interval.

Writes (and updates, one entry per projection x ranking) benchmarks/results/multimodal_eval.json:
  python benchmarks/eval_multimodal.py --projection projection-toy-encoder --variant default
Variants: default (the paper's ranking), contrast (score minus its mean over the images), layers10-29.
"""
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchcommon import hardware
from neuronlens.toy.world import sample_batch, split_seeds
from neuronlens.core import TensorCache
from neuronlens.limber.neurons import find_multimodal_neurons
from neuronlens.limber.toy_eval import evaluate_measures
from neuronlens.limber.projection import load_captioner
from neuronlens.core import atomic_write

VARIANTS = {'default': dict(), 'contrast': dict(contrast=True), 'layers10-29': dict(layers=list(range(10, 30)))}
OUT = Path(__file__).parent/'results'/'multimodal_eval.json'


def run(projection: str, variant: str, n: int, start: int, fresh_start: int, n_boot: int, batch_size: int) -> dict:
    "Find the multimodal neurons of `n` held-out test scenes with one projection and ranking, and evaluate every measure."
    t0 = time.time()
    cap = load_captioner('toy-encoder', projection=projection)
    seeds, fresh = list(split_seeds('test', n, start)), list(split_seeds('test', n, fresh_start))
    x = torch.from_numpy(sample_batch(seeds, 64, targets=False)['image']).permute(0, 3, 1, 2)
    cache = TensorCache()
    found = find_multimodal_neurons(cap, x, cache=cache, batch_size=batch_size, **VARIANTS[variant])
    t1 = time.time()
    ev = evaluate_measures(cap, found, seeds, fresh, cache=cache, n_boot=n_boot, batch_size=batch_size)
    card = cap.info
    return dict(projection=projection, variant=variant, model=card.get('lm'), encoder=card.get('encoder'), projection_sha256=card.get('sha256'),
                prefix=cap.prefix, token_norm=cap.projection.token_norm, caption_metrics=card.get('metrics', {}).get('shape_acc'),
                scene_seeds=dict(split='test', attribution=[start, start + n], fresh=[fresh_start, fresh_start + n]),
                settings=dict(top_k=100, n_units=ev['n_units'], n_boot=n_boot, ci=0.95, fold_norm=ev['fold_norm'], **{k: v for k, v in VARIANTS[variant].items()}),
                interpretable_fraction=ev['interpretable_fraction'], layer_matched_interpretable_fraction=ev['layer_matched_interpretable_fraction'],
                paper_interpretable_fraction=ev['paper_interpretable_fraction'], layer_counts=found.attribution.layer_counts(),
                first_token_share=float((found.attribution.top_tokens[found.attribution.valid] == 0).float().mean()),
                rows=ev['rows'], selectivity_units=ev['selectivity_units'], example=ev['example'],
                n_images=ev['n_images'], n_fresh=ev['n_fresh'], find_s=round(t1 - t0, 1), eval_s=round(time.time() - t1, 1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--projection', default='projection-toy-encoder')
    p.add_argument('--variant', default='default', choices=list(VARIANTS))
    p.add_argument('--n', type=int, default=256, help='held-out scenes (attribution; as many fresh ones for selectivity)')
    p.add_argument('--start', type=int, default=500)
    p.add_argument('--fresh-start', type=int, default=2000)
    p.add_argument('--n-boot', type=int, default=2000)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--out', type=Path, default=OUT)
    a = p.parse_args()
    res = run(a.projection, a.variant, a.n, a.start, a.fresh_start, a.n_boot, a.batch_size)
    res['hardware'] = hardware(torch.device('cpu'))
    out = a.out
    old = json.loads(out.read_text()) if out.exists() else {'format': 'neuronlens-multimodal-eval/1', 'runs': []}
    old['runs'] = [r for r in old['runs'] if (r['projection'], r['variant']) != (a.projection, a.variant)] + [res]
    atomic_write(out, lambda t: Path(t).write_text(json.dumps(old, indent=1, default=float)))
    for r in res['rows']:
        print(f"{r['measure']:>24} {r['units']:>8}  mm {r['multimodal']:.4f}  rnd {r['random']:.4f}  diff {r['diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}]  n={r['n']}")
    print(out)


if __name__ == '__main__':
    main()
