"""Time per stage of `reproduce second-order` on N images of a random ViT-B-32 (ImageNet layout written here, random pixels).

    python benchmarks/bench_reproduce.py --n-images 1000            # the real row: writes results/reproduce_<device>.json
    python benchmarks/bench_reproduce.py --quick                    # a tiny random ViT, seconds; prints, writes nothing
    python benchmarks/bench_reproduce.py --n-images 1000 --device cuda

The stages run as `neuronlens reproduce second-order` runs them (every=1 over the N written train images; the
applications' studies are timed only where they are wired in, else reported as skipped). CPU model, threads and
device are recorded beside the times.
"""
import argparse, datetime, json, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from benchcommon import hardware  # noqa: E402

from neuronlens.core import seed_everything  # noqa: E402
from neuronlens.data.datasets import imagenet_wnids  # noqa: E402
from neuronlens.lens.reproduce import MANIFEST, reproduce_second_order  # noqa: E402
from neuronlens.models.clip import load_clip  # noqa: E402


def write_imagenet(root: Path, n_train: int, n_val: int, n_classes: int = 10, side: int = 256, seed: int = 0) -> Path:
    "torchvision's ImageNet layout (train/ and val/ of wnid folders, meta.bin) with random JPEGs."
    rng, wnids = np.random.default_rng(seed), imagenet_wnids()[:n_classes]
    for split, n in (('train', n_train), ('val', n_val)):
        for i in range(n):
            w = wnids[i % n_classes]
            (root / split / w).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / split / w / f'{split}_{i:06d}.JPEG')
    names = {w: (f'class {i}',) for i, w in enumerate(wnids)}
    torch.save((names, [wnids[i % n_classes] for i in range(n_val)]), root / 'meta.bin')
    return root


def tiny_model_config(d: Path) -> str:
    "Register a tiny ViT open_clip config (for --quick) and return its name."
    import open_clip
    (d / 'bench-tiny-vit.json').write_text(json.dumps({
        'embed_dim': 32, 'vision_cfg': {'image_size': 64, 'layers': 4, 'width': 64, 'head_width': 16, 'patch_size': 16},
        'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 4, 'layers': 1}}))
    open_clip.add_model_config(d)
    return 'bench-tiny-vit'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='ViT-B-32'); p.add_argument('--layer', type=int, default=9)
    p.add_argument('--n-images', type=int, default=1000, help='train images the directions are computed on')
    p.add_argument('--n-val', type=int, default=100); p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--dictionary-size', type=int, default=30000, help='words of the built-in pool (the official 30k)')
    p.add_argument('--device', default='cpu'); p.add_argument('--threads', type=int, default=0)
    p.add_argument('--quick', action='store_true', help='a tiny random ViT on 24 images and a 50-word dictionary; prints only')
    p.add_argument('--out', type=Path, default=HERE / 'results')
    args = p.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix='bench-reproduce-'))
    if args.quick:
        args.model, args.layer, args.n_images, args.n_val = tiny_model_config(tmp), 1, 24, 8
    t0 = time.perf_counter()
    inet = write_imagenet(tmp / 'imagenet', args.n_images, args.n_val, side=64 if args.quick else 256)
    write_s = time.perf_counter() - t0
    seed_everything(0)
    clip = load_clip(args.model)
    clip.model.to(args.device)
    dictionary = None
    if args.quick:
        (tmp / 'words.txt').write_text('\n'.join(f'word{chr(97 + i % 26)}{chr(97 + i // 26)}' for i in range(50)))
        dictionary = str(tmp / 'words.txt')
    t0 = time.perf_counter()
    reproduce_second_order(clip, tmp / 'out', inet, layer=args.layer, every=1, val_every=1, batch_size=args.batch_size,
                           dictionary=dictionary, dictionary_size=args.dictionary_size,
                           templates=['a photo of a {}.'] if args.quick else None, say=lambda l: print(l, file=sys.stderr))
    total = time.perf_counter() - t0
    stages = json.loads((tmp / 'out' / MANIFEST).read_text())['stages']
    res = {
        'date': datetime.datetime.now().isoformat(timespec='seconds'), 'hardware': hardware(torch.device(args.device)),
        'settings': {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        'write_dataset_s': round(write_s, 2), 'total_s': round(total, 2),
        'stages': {n: s.get('seconds', s.get('why')) for n, s in stages.items()},
        'images_per_s_significance': round(args.n_images / stages['significance']['seconds'], 2),
    }
    print(json.dumps(res, indent=1))
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"reproduce_{args.device.split(':')[0]}.json").write_text(json.dumps(res, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
