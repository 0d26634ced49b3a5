"""Read rate of the paper's dataset sources against `encode_image`, in one run, on synthetic data in each exact format.

    .venv/bin/python benchmarks/bench_sources.py [--quick] [--device cpu|cuda] [--n 256] [--size 224] [--batch 32] [--model ViT-B-32]

Each source of `neuronlens.data.datasets` (`imagenet:`, `imagenet-r:`, `cifar10:`, `imagenet-seg:`, `masks:`, `coco:`)
reads a dataset written here, in a temporary folder, in the format the real one has: ImageNet's train/ wnid folders
with torchvision's meta.bin, ImageNet-R's wnid folders, CIFAR-10's Python pickles, gtsegs_ijcv.mat as MATLAB v7.3
(HDF5, images and masks through object references), images with PNG masks of the same stem, COCO val2017 with its
captions and instances JSON. Images are JPEG at the real sets' typical sizes (ImageNet 500x375, COCO 640x480,
CIFAR 32x32; the .mat holds raw pixels, as the real file). What is timed (wall clock, after one warm-up batch):
`source.load(a, b)` over all n images at `--size` (decode and resize, what the lens reads), and `encode_image` of a
random-init open_clip `--model` (default ViT-B-32, fp32) on those same images, preprocessed, batch `--batch`. The
ratio read/encode says whether reading keeps up with the encoder (>1: it does). Results go to
benchmarks/results/sources_<device>.json and a row per source of sources.md; `--quick` (16 images, one row, no
files written unless `--write`) is the smoke run.
"""
import argparse, io, json, pickle, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from benchcommon import hardware, add_table_row, sync, PeakMemory

RESULTS = Path(__file__).parent / 'results'
WNIDS = ['n01440764', 'n01443537', 'n01833805', 'n02007558']  # in ImageNet and ImageNet-R


def picture(rng, h, w):
    "uint8 [h, w, 3]: smooth colour fields plus a little noise (JPEG sizes close to photos', unlike white noise)."
    small = rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
    return np.clip(big + rng.integers(-12, 13, big.shape), 0, 255).astype(np.uint8)


def save(path, a, fmt='JPEG'):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, format=fmt, **({'quality': 90} if fmt == 'JPEG' else {}))


def write_imagenet(root, n, rng):
    "torchvision's layout: train/<wnid>/*.JPEG and meta.bin (wnid -> names, val wnids)."
    for i in range(n):
        w = WNIDS[i % len(WNIDS)]
        save(root / 'train' / w / f'{w}_{i}.JPEG', picture(rng, 375, 500))
    torch.save(({w: (w,) for w in WNIDS}, []), root / 'meta.bin')
    return f'imagenet:{root}?split=train&every=1'


def write_imagenet_r(root, n, rng):
    for i in range(n):
        save(root / WNIDS[i % len(WNIDS)] / f'art_{i}.jpg', picture(rng, 400, 400))
    return f'imagenet-r:{root}?every=1'


def write_cifar10(root, n, rng):
    "cifar-10-batches-py with Python-2 style pickles (bytes keys), the n images in test_batch."
    d = root / 'cifar-10-batches-py'
    d.mkdir(parents=True)
    x = np.stack([picture(rng, 32, 32) for _ in range(n)])
    for f in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        k = n if f == 'test_batch' else 1
        with open(d / f, 'wb') as fh:
            pickle.dump({b'batch_label': b'x', b'labels': [0] * k, b'data': x[:k].transpose(0, 3, 1, 2).reshape(k, -1)}, fh)
    with open(d / 'batches.meta', 'wb') as fh:
        pickle.dump({b'label_names': [f'class {i}' for i in range(10)]}, fh)
    return f'cifar10:{root}?split=test&every=1'


def write_imagenet_seg(path, n, rng):
    "gtsegs_ijcv.mat: MATLAB v7.3 (HDF5 with a 512-byte user block), /value/img and /value/gt as object references."
    import h5py
    with h5py.File(path, 'w', userblock_size=512) as f:
        refs = f.create_group('#refs#')
        img_refs = np.empty((n, 1), dtype=h5py.ref_dtype)
        gt_refs = np.empty((n, 1), dtype=h5py.ref_dtype)
        for i in range(n):
            im = picture(rng, 375, 500)
            m = np.zeros((375, 500), np.uint8)
            m[100:300, 150:400] = 1
            img_refs[i, 0] = refs.create_dataset(f'img{i}', data=im.transpose(2, 1, 0)).ref
            mref = refs.create_dataset(f'gt{i}', data=m.T).ref
            gt_refs[i, 0] = refs.create_dataset(f'cell{i}', data=np.array([[mref]], dtype=h5py.ref_dtype)).ref
        f.create_dataset('value/img', data=img_refs)
        f.create_dataset('value/gt', data=gt_refs)
    with open(path, 'r+b') as fh:
        fh.write(b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 .'.ljust(116))
    return f'imagenet-seg:{path}?every=1'


def write_masks(root, n, rng):
    for i in range(n):
        save(root / 'images' / f'{i:05d}.jpg', picture(rng, 375, 500))
        m = np.zeros((375, 500), np.uint8)
        m[50:200, 60:300] = 1 + i % 3
        save(root / 'masks' / f'{i:05d}.png', m, 'PNG')
    return f'masks:{root}?every=1'


def write_coco(root, n, rng):
    "val2017/*.jpg with annotations/captions_val2017.json and instances_val2017.json (polygons)."
    images, caps, inst = [], [], []
    for i in range(n):
        name = f'{i + 1:012d}.jpg'
        save(root / 'val2017' / name, picture(rng, 480, 640))
        images.append({'id': i + 1, 'file_name': name, 'height': 480, 'width': 640})
        caps.append({'id': 10 * i, 'image_id': i + 1, 'caption': f'a photo number {i}.'})
        inst.append({'id': i + 1, 'image_id': i + 1, 'category_id': 1, 'iscrowd': 0, 'area': 4e4, 'bbox': [100, 100, 200, 200],
                     'segmentation': [[100, 100, 300, 100, 300, 300, 100, 300]]})
    (root / 'annotations').mkdir(parents=True)
    (root / 'annotations' / 'captions_val2017.json').write_text(json.dumps({'images': images, 'annotations': caps}))
    (root / 'annotations' / 'instances_val2017.json').write_text(
        json.dumps({'images': images, 'categories': [{'id': 1, 'name': 'thing'}], 'annotations': inst}))
    return f'coco:{root}?every=1'


WRITERS = {'imagenet': write_imagenet, 'imagenet-r': write_imagenet_r, 'cifar10': write_cifar10,
           'imagenet-seg': write_imagenet_seg, 'masks': write_masks, 'coco': write_coco}


def read_rate(src, batch):
    "images/s of `src.load` over all its images (after one warm-up batch, not counted) and the images read."
    src.load(0, min(batch, src.n))
    out, t = [], time.perf_counter()
    for a in range(0, src.n, batch):
        out.append(src.load(a, min(a + batch, src.n)))
    return src.n / (time.perf_counter() - t), np.concatenate(out)


def encode_rate(clip, images, batch, device):
    "images/s of `encode_image` (preprocessing included) on uint8 [n, H, W, 3] images (after one warm-up batch)."
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        clip.model.encode_image(clip.preprocess(x[:batch]).to(device)); sync(device)
        t = time.perf_counter()
        for a in range(0, len(x), batch):
            clip.model.encode_image(clip.preprocess(x[a : a + batch]).to(device))
        sync(device)
    return len(x) / (time.perf_counter() - t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='16 images per source, nothing written (a smoke run)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--n', type=int, default=256, help='images per source')
    ap.add_argument('--size', type=int, default=224, help='side the sources resize to (the model input)')
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--model', default='ViT-B-32', help='open_clip architecture, random init')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--write', action='store_true', help='with --quick: still write the results')
    a = ap.parse_args(argv)
    if a.quick:
        a.n = min(a.n, 16)
    if a.threads:
        torch.set_num_threads(a.threads)
    from neuronlens.data.datasets import dataset_source
    from neuronlens.models.clip import load_clip
    device = torch.device(a.device)
    clip = load_clip(a.model)
    clip.model.to(device).eval()
    rng = np.random.default_rng(0)
    res = {'hardware': hardware(device), 'settings': {'n': a.n, 'size': a.size, 'batch': a.batch, 'model': a.model,
                                                      'dtype': 'float32', 'quick': a.quick}, 'sources': {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in WRITERS.items():
            target = Path(tmp) / (name + ('.mat' if name == 'imagenet-seg' else ''))
            t = time.perf_counter()
            spec = write(target, a.n, rng)
            t_write = time.perf_counter() - t
            src = dataset_source(spec, size=a.size)
            assert src.n == a.n, (name, src.n)
            with PeakMemory(device) as mem:
                read, images = read_rate(src, a.batch)
                enc = encode_rate(clip, images, a.batch, device)
            res['sources'][name] = {'read_img_s': round(read, 1), 'encode_img_s': round(enc, 1), 'read_over_encode': round(read / enc, 2),
                                    'stored_image': f'{images.shape[1]}x{images.shape[2]}', 'peak_mib': mem.mib, 'write_s': round(t_write, 2)}
            print(name, res['sources'][name], flush=True)
    if a.quick and not a.write:
        print(json.dumps(res, indent=1))
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f'sources_{device.type}.json').write_text(json.dumps(res, indent=1))
    hw = res['hardware']
    header = ("# Dataset sources: read rate against encode_image (synthetic data in each format, one run)\n\n"
              "| date | machine | device | model | n | source | read (img/s) | encode_image (img/s) | read / encode |\n"
              "|---|---|---|---|---|---|---|---|---|\n")
    mach = f"{hw['cpu'][:40]} ({hw['usable_cores']} cores, {hw['torch_threads']} threads, load {hw['load_avg_at_start'][0]})" + (f", {hw['gpu']}" if 'gpu' in hw else '')
    for name, r in res['sources'].items():
        add_table_row(RESULTS / 'sources.md', f"| {hw['date'][:16]} | {mach} | {hw['device']} | {a.model} | {a.n} | {name}: | "
                      f"{r['read_img_s']} | {r['encode_img_s']} | {r['read_over_encode']} |", header)
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
