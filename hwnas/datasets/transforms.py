"""Once-for-All's image preprocessing, on PIL images and numpy arrays only (no torch).

Evaluation (OFA's ``build_valid_transform``, as torchvision runs it on a PIL image):

1. resize so the shorter side is ``ceil(r / 0.875)`` px, bilinear (PIL's antialiased filter);
   the longer side becomes ``int(S * long / short)``; an image whose shorter side already is
   ``S`` is left as it is;
2. centre crop ``r × r``, offsets ``round((H - r) / 2)`` and ``round((W - r) / 2)`` (Python's
   round, halves to even);
3. uint8 → float32 ``/ 255``, then ``(x - mean) / std`` with ImageNet's mean (0.485, 0.456, 0.406)
   and std (0.229, 0.224, 0.225), channels first.

Training, BN recalibration (OFA's ``build_train_transform`` with ``distort_color="tf"``):
random resized crop (area 8–100 %, aspect 3/4–4/3, ten tries then a centre fallback) resized to
``r × r`` bilinear, a horizontal flip with probability ½, and a colour jitter (brightness factor
in 1 ± 32/255, saturation factor in 0.5–1.5, applied in random order), then the same scaling
and normalisation.

Every random draw of one image comes from ``numpy.random.default_rng([seed, position])``, where
``position`` is the image's place in the requested sequence, in this order: per crop try
``uniform(scale)``, ``uniform(log-ratio)`` and, for the try that fits, ``integers(0, H - h + 1)``
then ``integers(0, W - w + 1)``; the flip ``random() < 0.5``; the jitter order ``random() < 0.5``
(brightness first when true), the brightness factor, the saturation factor. So a batch is the
same whichever process, chunk or batch size decoded it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875  # evaluation crops r out of a shorter side of r / 0.875
SCALE = (0.08, 1.0)  # random-resized-crop area fraction
RATIO = (3.0 / 4.0, 4.0 / 3.0)  # random-resized-crop aspect ratio (w / h)
BRIGHTNESS = 32.0 / 255.0  # OFA's "tf" colour distortion
SATURATION = 0.5

_MODE_KIND = {"L": "grayscale", "1": "1-bit", "I": "32-bit grayscale", "I;16": "16-bit grayscale",
              "F": "float grayscale", "LA": "grayscale with alpha", "RGBA": "RGBA (with alpha)",
              "PA": "palette with alpha", "P": "palette", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "Lab",
              "HSV": "HSV", "RGBX": "RGBX", "RGBa": "RGBa"}


def mode_kind(mode: str) -> str:
    """A reader's name for a PIL mode (``L`` → ``grayscale``)."""
    return _MODE_KIND.get(mode, mode)


def eval_resize(resolution: int) -> int:
    """Shorter side (px) an image is resized to before the centre crop: ``ceil(r / 0.875)``."""
    return int(math.ceil(resolution / CROP_FRACTION))


@dataclass(frozen=True)
class Recipe:
    """What to do to every image of one request (sent to the decoding workers)."""

    resolution: int
    train: bool = False
    seed: int = 0
    color_jitter: bool = True


def load_rgb(path: str):
    """Open and fully decode ``path`` as RGB. Returns ``(image, original mode)``.

    Raises whatever the decoder raises for an unreadable or truncated file (callers name the file).
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns (e.g. EXIF, palette transparency) where it still decodes
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            rgb = im if mode == "RGB" else im.convert("RGB")
            rgb.load()
            return (rgb.copy() if rgb is im else rgb), mode


def resize_shorter(img, size: int):
    """Resize so the shorter side is ``size`` (bilinear), keeping the aspect (torchvision's rule)."""
    from PIL import Image

    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return img
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    return img.resize((new_w, new_h), Image.BILINEAR)


def center_crop(img, size: int):
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def eval_image(img, resolution: int) -> np.ndarray:
    """OFA's evaluation transform up to the uint8 crop: ``(r, r, 3)`` uint8."""
    return np.asarray(center_crop(resize_shorter(img, eval_resize(resolution)), resolution), dtype=np.uint8)


def crop_params(rng: np.random.Generator, width: int, height: int, scale=SCALE, ratio=RATIO):
    """``(top, left, h, w)`` of a random resized crop (area ``scale``, aspect ``ratio``)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_image(img, resolution: int, rng: np.random.Generator, color_jitter: bool = True) -> np.ndarray:
    """OFA's training transform up to the uint8 crop: ``(r, r, 3)`` uint8."""
    from PIL import Image, ImageEnhance

    top, left, h, w = crop_params(rng, *img.size)
    out = img.crop((left, top, left + w, top + h)).resize((resolution, resolution), Image.BILINEAR)
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    if color_jitter:
        brightness_first = rng.random() < 0.5
        b = rng.uniform(max(0.0, 1 - BRIGHTNESS), 1 + BRIGHTNESS)
        s = rng.uniform(max(0.0, 1 - SATURATION), 1 + SATURATION)
        ops = [(ImageEnhance.Brightness, b), (ImageEnhance.Color, s)]
        for enhancer, factor in ops if brightness_first else ops[::-1]:
            out = enhancer(out).enhance(factor)
    return np.asarray(out, dtype=np.uint8)


@lru_cache(maxsize=8)
def _lut(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(C, 256)`` float32: ``(v / 255 - mean[c]) / std[c]`` for every uint8 ``v``, in float32."""
    v = np.arange(256, dtype=np.float32) / np.float32(255.0)
    m = np.asarray(mean, dtype=np.float32)[:, None]
    s = np.asarray(std, dtype=np.float32)[:, None]
    return (v[None, :] - m) / s


def normalize(crops: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` → float32 ``(N, C, H, W)``: ``(x / 255 - mean) / std`` in float32.

    Done as a per-channel lookup of the 256 possible values (the same float32 operations, so
    bit-identical), ~2.5x faster than the arithmetic: it runs in the process that feeds the network.
    """
    lut = _lut(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    n, h, w, c = crops.shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    for k in range(c):
        np.take(lut[k], crops[..., k], out=out[:, k], mode="clip")
    return out


def decode_chunk(paths: list[str], positions: list[int], recipe: Recipe):
    """Decode and transform images (runs in a worker process, or in-process).

    Returns ``(crops, ok, bad, modes)``: uint8 ``(n_ok, r, r, 3)`` for the images that decoded,
    a bool mask over ``paths``, ``[(i, reason)]`` for those that did not, and ``[(i, mode)]`` for
    the images that were not RGB (converted).
    """
    r = recipe.resolution
    crops, ok, bad, modes = [], np.zeros(len(paths), dtype=bool), [], []
    for i, (path, pos) in enumerate(zip(paths, positions)):
        try:
            img, mode = load_rgb(path)
        except Exception as exc:  # PIL's decoders raise OSError, SyntaxError, ValueError, struct.error ...
            bad.append((i, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'unreadable'}"))
            continue
        if mode != "RGB":
            modes.append((i, mode))
        if recipe.train:
            crop = train_image(img, r, np.random.default_rng([recipe.seed, pos]), recipe.color_jitter)
        else:
            crop = eval_image(img, r)
        crops.append(crop)
        ok[i] = True
    arr = np.stack(crops) if crops else np.zeros((0, r, r, 3), dtype=np.uint8)
    return arr, ok, bad, modes
