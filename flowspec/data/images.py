"""Folders of PNG/JPEG images, decoded on demand (in DataLoader workers during training).

Layout: the images directly in the folder (unlabelled), or one subfolder per class
(``root/<class>/**/*.png``): the classes, in sorted folder-name order, become labels
``0 .. K-1`` that fill :attr:`Splits.contexts <flowspec.data.base.Splits>`. Files are taken in
sorted path order, so the splits depend only on the folder's content and the seed. Other files
(a README, hidden files) are ignored.

Every image is converted to grey (``L``, 1 channel) or RGB (3 channels): the spec's input
channels decide, else the first image's mode. ``crop: center`` first cuts the largest centred
region with the target's aspect ratio (a square without ``size``); ``size: [H, W]`` then resizes
with a box filter when shrinking (area averaging, as the downsampled-ImageNet sets were made) and
bicubic when enlarging. Without ``size`` every image must already have the same size. Pixels
stay ``uint8`` (256 levels).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from flowspec.data.base import MIN_EXAMPLES, Loaded, fail

__all__ = ["EXTENSIONS", "ImageFiles", "decode", "image_files", "load_image_folder"]

EXTENSIONS = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}
GREY_MODES = ("1", "L", "LA", "I;16", "I", "F")
EIGHT_BIT = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
HEADER_THREADS = 8


def image_files(root: Path) -> tuple[list[Path], np.ndarray | None, list[str]]:
    """The image paths under ``root`` in sorted order, their labels (None without class
    subfolders) and the class names."""

    def images_in(folder: Path, recursive: bool) -> list[Path]:
        found = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(
            p
            for p in found
            if p.suffix.lower() in EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = images_in(root, recursive=False)
    if classes and loose:
        msg = (
            f"{root} holds both images ({loose[0].name}, ...) and subfolders "
            f"({classes[0]}, ...): a folder is either unlabelled or one subfolder per class"
        )
        raise fail("data-labels", msg, "move the loose images into a class folder")
    if not classes:
        return loose, None, []
    paths: list[Path] = []
    labels: list[int] = []
    for k, name in enumerate(classes):
        members = images_in(root / name, recursive=True)
        paths += members
        labels += [k] * len(members)
    return paths, np.asarray(labels, dtype=np.int64), classes


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise fail("data-unreadable", f"{path} is not a readable image: {exc}") from None


def _crop_box(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The largest centred box of aspect ratio ``aspect`` (width / height)."""
    w, h = (
        (width, round(width / aspect))
        if width / height < aspect
        else (round(height * aspect), height)
    )
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def decode(path: Path, channels: int, size: tuple[int, int] | None, crop: str) -> np.ndarray:
    """One image as a ``uint8`` array ``(channels, H, W)``, cropped and resized as asked."""
    from PIL import Image

    image = _open(path)
    if image.mode not in EIGHT_BIT:
        msg = f"{path} has pixel mode {image.mode!r}; only 8-bit images are read"
        raise fail("data-format", msg, "convert the images to 8-bit PNG or JPEG")
    try:
        if size is not None and image.format == "JPEG":
            image.draft(MODES[channels], (size[1], size[0]))  # decode at a reduced scale
        image = image.convert(MODES[channels])
        if crop == "center":
            aspect = 1.0 if size is None else size[1] / size[0]
            image = image.crop(_crop_box(image.width, image.height, aspect))
        if size is not None and image.size != (size[1], size[0]):
            shrink = image.width >= size[1] and image.height >= size[0]
            method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
            image = image.resize((size[1], size[0]), method)
        pixels = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise fail("data-unreadable", f"{path} could not be decoded: {exc}") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


class ImageFiles:
    """A :class:`~flowspec.data.base.RowSource` of image files: rows are decoded when read."""

    def __init__(
        self, paths: list[Path], channels: int, size: tuple[int, int], crop: str, resize: bool
    ) -> None:
        self.paths, self.channels, self.crop = paths, channels, crop
        self.size = size if resize else None
        self.shape = (len(paths), channels, *size)
        self.dtype = np.dtype(np.uint8)

    def fingerprint(self, digest: Any) -> None:
        """The files' names, sizes and modification times and how they are fitted (decoding
        every image to hash its pixels would cost a pass over the whole folder)."""
        digest.update(f"{self.channels}\0{self.size}\0{self.crop}\0".encode())
        for path in self.paths:
            info = path.stat()
            digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())

    def read(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)
        for row, i in enumerate(index):
            pixels = decode(self.paths[i], self.channels, self.size, self.crop)
            if pixels.shape != self.shape[1:]:
                msg = (
                    f"{self.paths[i]} gives an image of shape {pixels.shape}, the others "
                    f"{self.shape[1:]}"
                )
                raise fail("data-shape", msg, _SIZE_HINT)
            out[row] = pixels
        return out


_SIZE_HINT = "give every image the same size, or set data: {size: [H, W]} (and crop: center)"


def _headers(paths: list[Path]) -> list[tuple[str, tuple[int, int]]]:
    """``(mode, (width, height))`` of every image, reading headers only (a few threads)."""

    def header(path: Path) -> tuple[str, tuple[int, int]]:
        with _open(path) as image:
            return image.mode, image.size

    with ThreadPoolExecutor(HEADER_THREADS) as pool:
        return list(pool.map(header, paths))


def load_image_folder(
    root: Path,
    shape: tuple[int, ...] | None,
    size: tuple[int, int] | None,
    crop: str,
) -> Loaded:
    """The images under ``root`` as a lazily decoded source, with labels for class folders.

    Arguments:
        root: the folder.
        shape: the spec's per-example input shape ``(C, H, W)`` (picks grey or RGB), or None.
        size: resize every image to ``(H, W)``; None keeps the sizes (they must agree).
        crop: ``"center"`` or ``"none"``.
    """
    paths, labels, _ = image_files(root)
    if len(paths) < MIN_EXAMPLES:
        msg = f"{root} holds {len(paths)} PNG/JPEG images; an 80/10/10 split needs {MIN_EXAMPLES}"
        raise fail("data-too-small", msg, f"image files end in {', '.join(EXTENSIONS)}")
    headers = _headers(paths)
    deep = next((i for i, (mode, _) in enumerate(headers) if mode not in EIGHT_BIT), None)
    if deep is not None:
        msg = f"{paths[deep]} has pixel mode {headers[deep][0]!r}; only 8-bit images are read"
        raise fail("data-format", msg, "convert the images to 8-bit PNG or JPEG")
    if shape is not None and len(shape) == 3:
        channels = shape[0]
        if channels not in MODES:
            msg = f"images give 1 (grey) or 3 (RGB) channels; the spec's input has {channels}"
            raise fail("data-shape", msg, "use an input shape [1, H, W] or [3, H, W]")
    else:
        channels = 1 if headers[0][0] in GREY_MODES else 3
    if size is None:
        sizes = {}
        for path, (_, (w, h)) in zip(paths, headers):
            if crop == "center":
                w = h = min(w, h)
            sizes.setdefault((h, w), path)
        if len(sizes) > 1:
            (a, first), (b, second) = list(sizes.items())[:2]
            msg = (
                f"images differ in size: {first} is {a[0]}x{a[1]}, {second} is {b[0]}x{b[1]} (HxW)"
            )
            raise fail("data-shape", msg, _SIZE_HINT)
        target = next(iter(sizes))
    else:
        target = size
    source = ImageFiles(paths, channels, target, crop, resize=size is not None)
    return Loaded(source, labels=labels, levels=256)
