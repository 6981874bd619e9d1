"""Makes the image-folder test set and torchvision's preprocessed tensors.

Writes testdata/imagefolder/ (a small torchvision ImageFolder tree of
generated PNG and JPEG images, plus a non-image file ImageFolder skips) and
testdata/imagefolder_ref.npz with, for every sample in ImageFolder's order:

  rgb_<i>       uint8 H×W×3: the image as ImageFolder's loader sees it
                (PIL, libjpeg decoding, convert("RGB"));
  gray_<i>      uint8 H×W: PIL's convert("L") of that;
  <preset>      float32 N×C×H×W: torchvision's transform output, for the
                presets below;
  labels        int64 N: ImageFolder's targets.

and testdata/imagefolder_ref.json with the classes and the relative paths in
ImageFolder's order.

Run from the repository root with Debian's interpreter:

    /usr/bin/python3 scripts/make_image_reference.py
"""

import json
import os
import shutil

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T
import torchvision.transforms.functional as F

ROOT = os.path.join("testdata", "imagefolder")
REF = os.path.join("testdata", "imagefolder_ref")

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
PRESETS = {
    # torchvision's standard evaluation transform (references/classification
    # presets, weights.transforms()).
    "imagenet": T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)]),
    # an exact resize, then a crop taller than the image (zero padding).
    "small": T.Compose([T.Resize((60, 80)), T.CenterCrop(72), T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)]),
    # one channel, MNIST-sized.
    "gray": T.Compose([T.Grayscale(), T.Resize(32), T.CenterCrop(28), T.ToTensor(), T.Normalize([0.5], [0.5])]),
}


def picture(rng, w, h):
    """A smooth scene with edges and mild noise (uint8 H×W×3)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 100 * np.sin(x / (7 + 5 * rng.random())) * np.cos(y / 11)
    g = 255 * x / w
    b = 255 * (1 - y / h)
    img = np.stack([r, g, b], -1)
    for _ in range(4):
        cx, cy, rad = rng.random() * w, rng.random() * h, 10 + rng.random() * min(w, h) / 3
        mask = (x - cx) ** 2 + (y - cy) ** 2 < rad**2
        img[mask] = rng.integers(0, 256, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_images():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    rng = np.random.default_rng(20261201)
    for c in ["Zebra", "Zebra/sub", "a_dog", "b_cat"]:
        os.makedirs(os.path.join(ROOT, c))
    Image.fromarray(picture(rng, 300, 200)).save(os.path.join(ROOT, "Zebra", "z1.png"))
    # 4:2:0 chroma (PIL's default), odd sizes, portrait.
    Image.fromarray(picture(rng, 257, 311)).save(os.path.join(ROOT, "Zebra", "sub", "z2.jpg"), quality=90)
    # 4:4:4 chroma.
    Image.fromarray(picture(rng, 320, 240)).save(os.path.join(ROOT, "a_dog", "d1.JPG"), quality=95, subsampling=0)
    # grayscale PNG, upsampled by Resize(256).
    Image.fromarray(picture(rng, 180, 150)[:, :, 1]).save(os.path.join(ROOT, "a_dog", "d2.png"))
    with open(os.path.join(ROOT, "a_dog", "notes.txt"), "w") as f:
        f.write("not an image: ImageFolder skips this file\n")
    # RGBA: ImageFolder's convert("RGB") drops alpha.
    rgba = np.concatenate([picture(rng, 260, 260), rng.integers(0, 256, (260, 260, 1), dtype=np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(ROOT, "b_cat", "c1.png"))
    # palette PNG.
    Image.fromarray(picture(rng, 128, 96)).quantize(64).save(os.path.join(ROOT, "b_cat", "c2.png"))
    # grayscale JPEG.
    Image.fromarray(picture(rng, 240, 320)[:, :, 0]).save(os.path.join(ROOT, "b_cat", "c3.jpeg"), quality=85)


def main():
    make_images()
    base = torchvision.datasets.ImageFolder(ROOT)
    out = {"labels": np.array(base.targets, dtype=np.int64)}
    for i, (path, _) in enumerate(base.samples):
        img = base.loader(path)
        out[f"rgb_{i}"] = np.asarray(img, dtype=np.uint8)
        out[f"gray_{i}"] = np.asarray(img.convert("L"), dtype=np.uint8)
    for name, tf in PRESETS.items():
        ds = torchvision.datasets.ImageFolder(ROOT, transform=tf)
        out[name] = torch.stack([x for x, _ in ds]).numpy().astype(np.float32)
    aa = []
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    for i in range(len(base.samples)):
        t = torch.from_numpy(out[f"rgb_{i}"]).permute(2, 0, 1).contiguous()
        t = F.resize(t, 256, antialias=True)
        t = F.center_crop(t, 224)
        aa.append((t.float() / 255 - mean) / std)
    torch_aa = torch.stack(aa).numpy().astype(np.float32)
    np.savez_compressed(REF + ".npz", **out)
    meta = {
        "classes": base.classes,
        "samples": [[os.path.relpath(p, ROOT), y] for p, y in base.samples],
        "torchvision": torchvision.__version__,
        "pillow": Image.__version__,
        "presets": {k: repr(v) for k, v in PRESETS.items()},
    }
    with open(REF + ".json", "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    d = np.abs(torch_aa - out["imagenet"])
    print(f"{len(base.samples)} images, classes {base.classes}")
    # torch's own antialiased resampler (F.resize on uint8 tensors) against
    # PIL's, for the README's figures.
    print(f"torch antialias vs PIL resampler (ImageNet preset): max |diff| {d.max():.6g}, mean {d.mean():.3g}")


if __name__ == "__main__":
    main()
