"""Decompositions against the toy world's truth (`lens.groundtruth.evaluate_lens`) on several ToyCLIPs, side by side.

    python benchmarks/bench_groundtruth.py [--models toyclip,toyclip-spurious,toyclip-spurious-control] [--n-images 2000]

Writes (and updates, one entry per model) benchmarks/results/groundtruth.json: for the last MLP layer the lens reads
(the block before the last), precision@3 of the decompositions of the 100 most significant neurons' second-order
directions against the concepts enriched in their top images, beside first-order and random directions (the same
neurons, the same scoring), the sparsity table, the number of polysemous neurons and the held-out direction cosines.
Scenes: held-out test seeds of the plain toy world (a spurious model sees no cues there). `--models` takes zoo names
or .safetensors paths (an interim checkpoint by path is named by its file stem).
"""
import argparse, json, sys, time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchcommon import hardware
from neuronlens.core import TensorCache, atomic_write
from neuronlens.lens import decompose as dc
from neuronlens.lens.groundtruth import enriched_concepts, evaluate_lens
from neuronlens.toy.world import CONCEPTS, sample_batch, split_seeds
from neuronlens.models import zoo as models

OUT = Path(__file__).parent / 'results' / 'groundtruth.json'


def per_neuron_precision(terms, enriched, k: int = 3) -> np.ndarray:
    "Precision@k of each scored neuron's positive terms against its enriched concepts (neurons with none skipped), written here from the definition."
    col = {w: i for i, w in enumerate(CONCEPTS)}
    out = []
    for n, ts in enumerate(terms):
        if not enriched[n].any():
            continue
        pos = [w for w, c in ts if c > 0][:k]
        out.append(np.mean([any(t in col and enriched[n, col[t]] for t in w.split()) for w in pos]) if pos else 0.0)
    return np.array(out, float)


def paired_interval(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    "Mean of a - b over neurons and its 95% percentile bootstrap interval (neurons resampled)."
    rng = np.random.default_rng(seed)
    d = a - b
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
    return {'diff': float(d.mean()), 'lo': float(np.quantile(boots, 0.025)), 'hi': float(np.quantile(boots, 0.975)), 'n': len(d)}


def measure(name: str, n_images: int, cache: TensorCache) -> dict:
    "evaluate_lens on the block before the last of one model; the JSON row."
    t0 = time.time()
    clip = models.load_model(name)
    layer = len(clip.blocks) - 2
    ev = evaluate_lens(clip, layer=layer, n_images=n_images, k_top=40, cache=cache)
    # second-order vs random directions, per neuron, with an interval (the random directions as score_decompositions draws them)
    concepts = sample_batch(split_seeds('test', n_images), targets=False)['concepts']
    top = ev['run'].effects.top_idx[ev['significant']]
    _, enr = enriched_concepts(top, concepts)
    dirs = ev['run'].directions[ev['significant']]
    rand = torch.nn.functional.normalize(torch.randn(dirs.shape, generator=torch.Generator().manual_seed(0)), dim=-1)
    emb = dc.embed_texts(clip.encode_text, dc.toy_vocabulary())
    rand_terms = dc.decompose_directions(rand, emb, dc.toy_vocabulary(), k=5, scale='dims', device='cpu').terms
    so_p, rnd_p = per_neuron_precision(ev['terms'], enr), per_neuron_precision(rand_terms, enr)
    lib = {r['directions']: r['precision@3'] for r in ev['precision']}
    assert abs(so_p.mean() - lib['second-order directions']) < 1e-9 and abs(rnd_p.mean() - lib['random directions']) < 1e-9, (so_p.mean(), rnd_p.mean(), lib)
    return dict(model=Path(name).stem, source=str(name), layer=layer, n_images=n_images, k_top=40,
                n_neurons=len(ev['significant']), precision=ev['precision'],
                second_order_vs_random=paired_interval(so_p, rnd_p), sparsity=ev['sparsity'],
                n_polysemous=len(ev['polysemous']), heldout_median=ev['heldout']['median'],
                seconds=round(time.time() - t0, 1), hardware=hardware(torch.device('cpu')))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', default='toyclip,toyclip-spurious,toyclip-spurious-control')
    p.add_argument('--n-images', type=int, default=2000)
    p.add_argument('--cache', default=None)
    a = p.parse_args()
    cache = TensorCache(a.cache)
    for name in a.models.split(','):
        row = measure(name, a.n_images, cache)
        old = json.loads(OUT.read_text()) if OUT.exists() else {'format': 'neuronlens-groundtruth/1', 'models': {}}
        old['models'][row['model']] = row
        atomic_write(OUT, lambda t: Path(t).write_text(json.dumps(old, indent=1, default=float)))
        print(row['model'], row['seconds'], 's', json.dumps(row['precision'], default=float)[:400], flush=True)


if __name__ == '__main__':
    main()
