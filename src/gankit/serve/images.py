"""Images between the page and the models: tensors out as PNG data URLs, uploads in through the training's image
reader (gankit.data.decode.open_image), with their size bounded before a pixel is decoded."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
import torch
from PIL import Image

from gankit import viz
from gankit.data import decode
from gankit.data.images import to_stored
from gankit.errors import UserError

MAX_UPLOAD_BYTES = 2 << 20        # an upload is a small image: 2 MiB of file
MAX_UPLOAD_PIXELS = 4096 * 4096   # and at most this many pixels once decoded (training's bound is decode.MAX_PIXELS)


def png(x: torch.Tensor) -> bytes:
    """One image (C, H, W) in [-1, 1] as PNG bytes (Pillow)."""
    arr = viz.to_uint8(x[None])[0]                                       # (H, W, C) uint8
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_url(x: torch.Tensor) -> str:
    """One image (C, H, W) in [-1, 1] as a data: URL that an <img> shows."""
    return "data:image/png;base64," + base64.b64encode(png(x)).decode("ascii")


def data_urls(x: torch.Tensor) -> list[str]:
    return [data_url(im) for im in x]


def png_url(picture: Image.Image | bytes) -> str:
    """A PIL image, or a PNG file's bytes, as a data: URL."""
    if isinstance(picture, Image.Image):
        buf = io.BytesIO()
        picture.save(buf, format="PNG", compress_level=1)
        picture = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(picture).decode("ascii")


def from_base64(text) -> bytes:
    """The file bytes of an upload sent as base64 text (a data: URL or bare), bounded by MAX_UPLOAD_BYTES."""
    if not isinstance(text, str) or not text:
        raise UserError("image: expected the image file as base64 text (a data: URL)")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) > (MAX_UPLOAD_BYTES * 4) // 3 + 4:
        raise UserError(f"image: the upload is over {MAX_UPLOAD_BYTES >> 20} MiB; send a smaller image")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UserError("image: the upload is not valid base64") from None


def read_upload(data: bytes, channels: int, size: int) -> torch.Tensor:
    """An uploaded image file as (1, C, size, size) in [-1, 1]: its dimensions checked from the header (a
    decompression bomb is refused unread), decoded by the training's reader (open_image: transparency, EXIF
    orientation, 16-bit, CMYK), cropped to its centre square and resized as a data set's images are (to_stored)."""
    if not data:
        raise UserError("image: the upload is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as im:     # reads the header only
                w, h = im.size
        except Image.DecompressionBombError:
            raise UserError(f"image: the upload is over {MAX_UPLOAD_PIXELS:,} pixels; send a smaller image") from None
        except decode.UNREADABLE:
            raise UserError("image: the upload is not an image gankit can read (PNG, JPEG, GIF, WebP, ...)") from None
    if w * h > MAX_UPLOAD_PIXELS:
        raise UserError(f"image: the upload is {w}x{h} pixels, over {MAX_UPLOAD_PIXELS:,}; send a smaller image")
    try:
        im = decode.open_image(io.BytesIO(data), "L" if channels == 1 else "RGB")
    except decode.SkippedImage as e:
        raise UserError(f"image: the upload is refused ({e})") from None
    except decode.UNREADABLE as e:
        raise UserError(f"image: the upload cannot be decoded ({type(e).__name__})") from None
    arr = np.asarray(im)
    arr = arr[..., None] if arr.ndim == 2 else arr                        # (H, W, C)
    side = min(arr.shape[:2])
    top, left = (arr.shape[0] - side) // 2, (arr.shape[1] - side) // 2
    square = torch.from_numpy(arr[top: top + side, left: left + side].copy()).permute(2, 0, 1)   # (C, s, s)
    return to_stored(square[None], size, channels).float().div(127.5).sub(1.0)
