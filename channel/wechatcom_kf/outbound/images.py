"""Any image Pillow can read → a JPG (or a PNG with transparency) within WeCom's 10 MB image limit."""

from __future__ import annotations

import io
import logging
import math
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from .media import MB, MediaProblem, MediaUpload

logger = logging.getLogger(__name__)

IMAGE_MAX_BYTES = 10 * MB

_MAX_STEPS = 8  # encode attempts; each is a full JPEG encode, so the bound also bounds CPU time
_QUALITIES = (85, 75, 62)
_RESIZE_QUALITY = 75
_EXIF_ORIENTATION = 0x0112


def _open(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Decode fully, honouring Image.MAX_IMAGE_PIXELS (a bomb is refused, not just warned about) and
    ``max_pixels`` (checked from the header, before anything is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise MediaProblem(f"{width}x{height} pixels > {max_pixels}", too_big=True)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaProblem(f"decompression bomb refused: {exc}", too_big=True) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise MediaProblem(f"undecodable image: {type(exc).__name__}") from None
    return img


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Decode ``data`` completely within ``max_pixels``: its size, or MediaProblem (corrupt, truncated,
    a decompression bomb). A customer's image is checked so before it is stored or shown to a model."""
    img = _open(data, max_pixels)
    size = img.size
    img.close()
    return size


def _has_alpha(img: Image.Image) -> bool:
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode not in ("RGBA", "LA", "PA"):
        return False
    extrema = img.getchannel("A").getextrema()
    return isinstance(extrema[0], int | float) and extrema[0] < 255


def _needs_rotation(img: Image.Image) -> bool:
    try:
        return img.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
    except Exception:  # a corrupt EXIF block must not stop the image; Pillow raises various types
        return False


def _encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _flatten(img: Image.Image) -> Image.Image:
    """RGB for JPEG; transparent areas become white (WeChat's chat background is light)."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode not in ("RGB", "L"):
        return img.convert("RGB")
    return img


def _encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def _fit_jpeg(img: Image.Image, max_bytes: int) -> bytes:
    """Quality steps first, then shrink; at most _MAX_STEPS encodes, then give up."""
    scale = 1.0
    current = img
    for step in range(_MAX_STEPS):
        quality = _QUALITIES[step] if step < len(_QUALITIES) else _RESIZE_QUALITY
        data = _encode_jpeg(current, quality)
        logger.debug("jpeg step %d: %s q%d -> %d bytes", step, current.size, quality, len(data))
        if len(data) <= max_bytes:
            return data
        if step >= len(_QUALITIES) - 1:
            # Bytes scale roughly with the pixel count; aim a little under, shrink at least 10 %.
            factor = min(0.9, max(0.3, math.sqrt(max_bytes / len(data)) * 0.9))
            scale *= factor
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            current = img.resize(size, Image.Resampling.LANCZOS)
    raise MediaProblem(f"could not fit the image into {max_bytes} bytes", too_big=True)


def prepare_image(data: bytes, *, max_bytes: int = IMAGE_MAX_BYTES) -> MediaUpload:
    """An image upload of at most ``max_bytes``; raises MediaProblem with a customer notice otherwise."""
    img = _open(data)
    source_format = img.format
    rotate = _needs_rotation(img)
    displayable = img.mode in ("RGB", "RGBA", "L", "LA", "P")  # CMYK/16-bit render badly in WeChat
    if source_format in ("JPEG", "PNG") and displayable and len(data) <= max_bytes and not rotate:
        kind = "jpg" if source_format == "JPEG" else "png"
        # Already acceptable: sending the original avoids a lossy re-encode.
        return MediaUpload("image", f"image.{kind}", data, f"image/{'jpeg' if kind == 'jpg' else 'png'}")
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # an animated GIF/WebP becomes its first frame
    if rotate:
        img = ImageOps.exif_transpose(img)
    if _has_alpha(img):
        png = _encode_png(img)
        if len(png) <= max_bytes:
            return MediaUpload("image", "image.png", png, "image/png")
    jpeg = _fit_jpeg(_flatten(img), max_bytes)
    return MediaUpload("image", "image.jpg", jpeg, "image/jpeg")
