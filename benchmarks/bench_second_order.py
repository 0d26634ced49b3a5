"""Benchmark: the fast second-order engine vs the paper-faithful token-level reference, and vs a plain
`encode_image` forward pass, on the same model and images in one run.

Speed does not depend on weights, so the model is a random-init open_clip ViT-B-32 (the paper's model).
The reference is slow: it is timed on a few images (`--ref-images`) and its per-image time is compared
with the fast engine's. Each mode runs in its own process; peak memory is `benchcommon.PeakMemory` over the
timed block (peak RSS on CPU, peak CUDA tensor memory on a GPU), the definition every benchmark here uses.

    .venv/bin/python benchmarks/bench_second_order.py [--device cuda] [--batch 16] [--layer 9]
Writes benchmarks/results/second_order_<device>.json and appends a row to second_order.md.
    .venv/bin/python benchmarks/bench_second_order.py --set-images 5124 --batch 32
times the paper's whole significance set (5,124 images x 3,072 neurons: norms, top sets, directions) instead.
"""
import argparse, datetime, json, multiprocessing as mp, time
from pathlib import Path

import torch

from benchcommon import PeakMemory, add_table_row, hardware, sync

HERE = Path(__file__).resolve().parent


def _model(name, device, dtype):
    import open_clip
    torch.manual_seed(0)  # the same random weights in every process
    m = open_clip.create_model(name, pretrained=None).eval().to(device)
    return m.to(dtype) if dtype != torch.float32 else m


def _images(n, size, device, dtype, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(device, dtype)


def run_mode(mode, args, q):
    torch.set_num_threads(args.threads or torch.get_num_threads())
    from neuronlens.lens import second_order as so
    dtype = getattr(torch, args.dtype)
    model = _model(args.model, args.device, dtype)
    size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
    if mode == 'set':  # a whole significance set streamed through the engine, then the directions: wall time and peak memory
        n, b = args.set_images, args.batch
        batches = (_images(min(b, n - i), size, args.device, dtype, seed=10_000 + i) for i in range(0, n, b))
        with torch.no_grad(), PeakMemory(args.device) as pm:
            sync(torch.device(args.device)); t = time.perf_counter()
            le = so.compute_layer_effects(model, batches, args.layer, k_top=args.k_top, dtype=dtype)
            sync(torch.device(args.device)); t_eff = time.perf_counter() - t
            so.neuron_directions(le.top_effects)
            t_all = time.perf_counter() - t
        q.put({'mode': mode, 'images': n, 'neurons': int(le.norms.shape[1]), 'effects_seconds': t_eff, 'total_seconds': t_all,
               'images_per_s': n / t_eff, 'peak_rss_mib': pm.rss_mib, 'peak_cuda_mib': pm.cuda_mib, 'top_effects_shape': list(le.top_effects.shape)})
        return
    if mode == 'reference':
        imgs = _images(args.ref_images, size, args.device, dtype)
        so.second_order_reference(model, imgs[0], args.layer)  # warm-up
        with PeakMemory(args.device) as pm:
            sync(torch.device(args.device)); t = time.perf_counter()
            out = [so.second_order_reference(model, im, args.layer) for im in imgs]
            sync(torch.device(args.device)); secs = time.perf_counter() - t
        q.put({'mode': mode, 'images': len(imgs), 'seconds': secs, 'images_per_s': len(imgs) / secs, 'peak_rss_mib': pm.rss_mib, 'peak_cuda_mib': pm.cuda_mib,
               'effects': torch.stack(out).float().cpu()})
        return
    batches = [_images(args.batch, size, args.device, dtype, seed=s) for s in range(args.batches + 1)]
    with torch.no_grad():
        sync(torch.device(args.device)); t = time.perf_counter()
        bank = so.direction_bank(model, args.layer, dtype); sync(torch.device(args.device)); bank_secs = time.perf_counter() - t
        model.encode_image(batches[0]); so.compute_layer_effects(model, batches[:1], args.layer, k_top=args.k_top, dtype=dtype, bank=bank)
        enc_secs = fast_secs = 0.0
        # interleave the two so that load from other processes hits both alike; the fast engine streams all
        # batches through one call (top sets carried across batches), timed per batch via a generator
        def timed_batches():
            nonlocal enc_secs, fast_secs
            for b in batches[1:]:
                sync(torch.device(args.device)); t0 = time.perf_counter(); model.encode_image(b); sync(torch.device(args.device))
                enc_secs += time.perf_counter() - t0
                t1 = time.perf_counter(); yield b
                sync(torch.device(args.device)); fast_secs += time.perf_counter() - t1
        with PeakMemory(args.device) as pm:  # the fast engine streaming all batches (encode_image interleaved)
            so.compute_layer_effects(model, timed_batches(), args.layer, k_top=args.k_top, dtype=dtype, bank=bank)
        inp = so.record_lens_inputs(model, _images(args.ref_images, size, args.device, dtype), args.layer)
        effects = so.second_order_effects(inp, bank[0]).float().cpu()
    n = args.batch * args.batches
    q.put({'encode_image': {'images': n, 'seconds': enc_secs, 'images_per_s': n / enc_secs},
           'fast': {'images': n, 'seconds': fast_secs, 'images_per_s': n / fast_secs, 'bank_seconds': bank_secs,
                    'peak_rss_mib': pm.rss_mib, 'peak_cuda_mib': pm.cuda_mib, 'peak_mib': pm.mib},
           'effects': effects})


def _in_process(mode, args):
    ctx = mp.get_context('spawn'); q = ctx.Queue()
    p = ctx.Process(target=run_mode, args=(mode, args, q)); p.start()
    res = q.get(); p.join()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='ViT-B-32'); p.add_argument('--layer', type=int, default=9)
    p.add_argument('--device', default='cpu'); p.add_argument('--dtype', default='float32')
    p.add_argument('--batch', type=int, default=16); p.add_argument('--batches', type=int, default=4)
    p.add_argument('--ref-images', type=int, default=2); p.add_argument('--k-top', type=int, default=100)
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--set-images', type=int, default=0, help='instead: time a whole image set of this many images (effects, top sets, directions) and write second_order_set_<device>.json')
    p.add_argument('--out', type=Path, default=HERE / 'results')
    args = p.parse_args(argv)
    if args.set_images:
        res = _in_process('set', args)
        res.update(date=datetime.datetime.now().isoformat(timespec='seconds'), hardware=hardware(torch.device(args.device)),
                   settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"second_order_set_{args.device.split(':')[0]}.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1)); return
    both, ref = _in_process('fast', args), _in_process('reference', args)
    fast_eff, ref_eff = both.pop('effects'), ref.pop('effects')
    rows = {'encode_image': both['encode_image'], 'fast': both['fast'], 'reference': ref}
    rel = ((ref_eff - fast_eff).abs().max() / ref_eff.abs().max()).item()
    summary = {
        'date': datetime.datetime.now().isoformat(timespec='seconds'), 'hardware': hardware(torch.device(args.device)),
        'settings': {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        'rows': rows,
        'fast_vs_reference_speedup': rows['fast']['images_per_s'] / rows['reference']['images_per_s'],
        'fast_vs_encode_image': rows['fast']['images_per_s'] / rows['encode_image']['images_per_s'],
        'fast_vs_reference_rel_err': rel,
        'note': f"reference timed on {args.ref_images} images (it takes seconds per image); fast engine and encode_image on "
                f"{args.batches} batches of {args.batch}, interleaved batch by batch in one process; all neurons of layer {args.layer}, "
                f"top-{args.k_top} sets, norms and sums kept; fast img/s is steady state (the per-layer bank, bank_seconds, is built once per run)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tag = args.device.split(':')[0]
    (args.out / f'second_order_{tag}.json').write_text(json.dumps(summary, indent=1))
    line = (f"| {summary['date'][:10]} | {summary['hardware'].get('gpu', summary['hardware']['cpu'])} | {args.dtype} | {args.batch} | "
            f"{rows['encode_image']['images_per_s']:.2f} | {rows['fast']['images_per_s']:.2f} | {rows['reference']['images_per_s']:.4f} | "
            f"{summary['fast_vs_reference_speedup']:.0f}x | {summary['fast_vs_encode_image']:.2f} | {rows['fast']['peak_mib']:.0f} | {rel:.1e} |\n")
    add_table_row(args.out / 'second_order.md', line,
                  "# Second-order engine benchmark (ViT-B-32 random init, layer 9, all 3,072 neurons)\n\n"
                  "| date | device | dtype | batch | encode_image img/s | fast img/s | reference img/s | fast/reference | fast/encode_image | fast peak MiB | rel. err |\n"
                  "|---|---|---|---|---|---|---|---|---|---|---|\n")
    print(json.dumps({k: v for k, v in summary.items() if k != 'settings'}, indent=1))


if __name__ == '__main__':
    main()
