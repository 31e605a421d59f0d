"""The paper's pre-processing of the analysed slice, and the exact transform back to source pixels.

Germann et al. 2023 (shared/docs/PAPER.md, "Pre-processing"): keep the centre slice (centre-left
when the count is even), resample to 0.6 x 0.6 mm, fit into a 448 x 320 matrix, divide the
values by 2500 and clip to 1. We also orient the slice canonically (superior at row 0,
anterior at col 0; docs/INTERFACES.md) so the network always sees the same anatomy layout.

Coordinate convention: a point (r, c) is in pixel units with pixel (i, j) *centred* at
(i, j); the pixel covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]. The centre of the source
slice ((R - 1) / 2, (C - 1) / 2) maps onto the centre of the model grid ((H - 1) / 2,
(W - 1) / 2); distances scale by source spacing / model spacing along each axis.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

#: Paper values (see module docstring); the model card may override them.
MODEL_SPACING_MM = 0.6
MODEL_SHAPE = (448, 320)
INTENSITY_SCALE = 2500.0
INTENSITY_CLIP = 1.0
#: Pixel data of at most this many bits is scaled by its own full scale instead of
#: ``INTENSITY_SCALE``: the model met 8-bit images (SPIDER PNGs) divided by 255 in training,
#: and 8-bit values divided by 2500 lie far below anything it saw (``intensity_scale``).
EIGHT_BIT = 8
#: Whole-field-of-view grids: H and W are padded to a multiple of the network's stride, and
#: a field of view larger than this (per axis) keeps its central part.
MAX_FOV_MM = 500.0
#: A direction cosine smaller than this does not decide a flip (axis nearly in-plane normal).
_MIN_COSINE = 0.1


def centre_slice_index(n: int) -> int:
    """Index of the centre slice of ``n``: the centre-left one when ``n`` is even."""
    if n < 1:
        raise ValueError(f"a series needs at least one slice, got {n}")
    return (n - 1) // 2


@dataclass(frozen=True)
class SliceTransform:
    """Axis-aligned map between source-slice pixels and the canonical model grid.

    Attributes
    ----------
    source_shape : (int, int)
        (rows, cols) of the source slice.
    source_spacing_mm : (float, float)
        (row, col) PixelSpacing of the source slice.
    model_shape : (int, int)
        (rows, cols) of the model grid.
    model_spacing_mm : float
        Isotropic spacing of the model grid.
    transpose : bool
        The source's superior-inferior axis runs along its columns; rows and cols swap first.
    flip_rows, flip_cols : bool
        After the optional transpose, reverse rows (so superior is row 0) / columns (so
        anterior is col 0).
    scale, clip : float
        Intensity: model value = clip(source value / scale, 0, clip).
    """

    source_shape: tuple[int, int]
    source_spacing_mm: tuple[float, float]
    model_shape: tuple[int, int] = MODEL_SHAPE
    model_spacing_mm: float = MODEL_SPACING_MM
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    scale: float = INTENSITY_SCALE
    clip: float = INTENSITY_CLIP

    # ---- affine parts: model = gain * oriented_source + offset, per axis ---------------
    def _oriented(self) -> tuple[tuple[int, int], tuple[float, float]]:
        shape, spacing = self.source_shape, self.source_spacing_mm
        if self.transpose:
            return (shape[1], shape[0]), (spacing[1], spacing[0])
        return (int(shape[0]), int(shape[1])), (float(spacing[0]), float(spacing[1]))

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        shape, spacing = self._oriented()
        signs = np.array([-1.0 if self.flip_rows else 1.0, -1.0 if self.flip_cols else 1.0])
        gain = signs * np.asarray(spacing) / self.model_spacing_mm
        centre_src = (np.asarray(shape, float) - 1.0) / 2.0
        centre_model = (np.asarray(self.model_shape, float) - 1.0) / 2.0
        return gain, centre_model - gain * centre_src

    # ---- points ------------------------------------------------------------------------
    def to_model(self, rc: np.ndarray) -> np.ndarray:
        """Map (N, 2) source (row, col) points to model-grid (row, col)."""
        p = _points(rc)
        if self.transpose:
            p = p[:, ::-1]
        gain, offset = self._affine()
        return p * gain + offset

    def to_source(self, rc: np.ndarray) -> np.ndarray:
        """Map (N, 2) model-grid (row, col) points to source (row, col); exact inverse."""
        gain, offset = self._affine()
        p = (_points(rc) - offset) / gain
        return p[:, ::-1] if self.transpose else p

    # ---- images ------------------------------------------------------------------------
    def image_to_model(self, image: np.ndarray, order: int = 1) -> np.ndarray:
        """Resample a source-grid image onto the model grid (no intensity scaling).

        ``order=1`` is linear interpolation with Gaussian anti-aliasing where the model grid
        is coarser than the source; ``order=0`` is nearest neighbour (for label maps).
        Model pixels outside the source slice are 0.
        """
        image = np.asarray(image)
        if image.shape != tuple(self.source_shape):
            raise ValueError(f"image shape {image.shape} != source shape {self.source_shape}")
        oriented = image.T if self.transpose else image
        _, spacing = self._oriented()
        if order > 0:
            oriented = _anti_alias(oriented.astype(np.float32), spacing, self.model_spacing_mm)
        is_bool = oriented.dtype == bool
        if is_bool:
            oriented = oriented.astype(np.uint8)
        # the map is axis-aligned (source = (model - offset) / gain per axis): affine_transform
        # evaluates it without a coordinate grid of the whole model image
        gain, offset = self._affine()
        out = ndimage.affine_transform(oriented, 1.0 / gain, offset=-offset / gain,
                                       output_shape=tuple(self.model_shape), order=order,
                                       mode="nearest",
                                       output=np.float32 if order > 0 else oriented.dtype)
        out[~self._inside] = 0
        return out.astype(bool) if is_bool else out

    def in_view(self) -> np.ndarray:
        """Bool model-grid mask of the pixels that lie inside the source slice."""
        return self._inside.copy()

    @functools.cached_property
    def _inside(self) -> np.ndarray:
        shape, _ = self._oriented()
        gain, offset = self._affine()
        u = (np.arange(self.model_shape[0]) - offset[0]) / gain[0]
        v = (np.arange(self.model_shape[1]) - offset[1]) / gain[1]
        return (((u >= -0.5) & (u <= shape[0] - 0.5))[:, None]
                & ((v >= -0.5) & (v <= shape[1] - 0.5))[None, :])

    def mask_to_source(self, mask_model: np.ndarray, source_shape: tuple[int, int] | None = None
                       ) -> np.ndarray:
        """Resample a model-grid label map back onto the source slice (nearest neighbour).

        Source pixels whose centre falls outside the model grid get 0. The dtype is kept.
        """
        mask_model = np.asarray(mask_model)
        if mask_model.shape != tuple(self.model_shape):
            raise ValueError(f"mask shape {mask_model.shape} != model shape {self.model_shape}")
        shape = tuple(source_shape) if source_shape is not None else tuple(self.source_shape)
        if shape != tuple(self.source_shape):
            raise ValueError(f"source shape {shape} != transform source {self.source_shape}")
        rr, cc = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        uv = np.rint(self.to_model(np.stack([rr.ravel(), cc.ravel()], axis=1))).astype(np.int64)
        h, w = self.model_shape
        ok = (uv[:, 0] >= 0) & (uv[:, 0] < h) & (uv[:, 1] >= 0) & (uv[:, 1] < w)
        out = np.zeros(shape[0] * shape[1], dtype=mask_model.dtype)
        out[ok] = mask_model[uv[ok, 0], uv[ok, 1]]
        return out.reshape(shape)

    def scale_intensity(self, image_model: np.ndarray) -> np.ndarray:
        """Model intensities: value / scale clipped to [0, clip], float32."""
        return np.clip(np.asarray(image_model, np.float32) / np.float32(self.scale), 0.0,
                       self.clip).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (lists, bools, floats)."""
        return {"source_shape": list(self.source_shape),
                "source_spacing_mm": list(self.source_spacing_mm),
                "model_shape": list(self.model_shape), "model_spacing_mm": self.model_spacing_mm,
                "transpose": self.transpose, "flip_rows": self.flip_rows,
                "flip_cols": self.flip_cols, "scale": self.scale, "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SliceTransform:
        kw = dict(d)
        for key in ("source_shape", "source_spacing_mm", "model_shape"):
            kw[key] = tuple(kw[key])
        return cls(**kw)


def _points(rc: np.ndarray) -> np.ndarray:
    p = np.asarray(rc, dtype=np.float64)
    if p.ndim == 1 and p.shape[0] == 2:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be (N, 2) (row, col), got shape {p.shape}")
    return p


def _anti_alias(image: np.ndarray, spacing_mm: tuple[float, float], target_mm: float
                ) -> np.ndarray:
    """Gaussian prefilter where the target grid is coarser (sigma as skimage.transform.rescale:
    (factor - 1) / 2 source pixels, factor = target / source spacing)."""
    sigma = [max(0.0, (target_mm / s - 1.0) / 2.0) for s in spacing_mm]
    if max(sigma) <= 0:
        return image
    return ndimage.gaussian_filter(image, sigma=sigma, mode="nearest")


#: The 99th percentile of an 8-bit series, as a fraction of its full scale, over the SPIDER
#: train patients the network learned real MRI from (33 series: 128 to 255 of 255, median 173;
#: the 8 val series 123 to 255). An 8-bit series below ``EIGHT_BIT_P99_MIN`` (an export
#: through a wide window) is dimmer than anything the network was trained on; its divisor then
#: puts its 99th percentile at ``EIGHT_BIT_P99_TARGET``, the training series' median. Others are
#: divided by their full scale as before: the minimum sits a few grey levels below the dimmest
#: SPIDER series (as the app samples it, every other pixel: 123 and 127), so no SPIDER series
#: and no 8-bit phantom export (255) is changed.
EIGHT_BIT_P99_MIN = 120 / 255
EIGHT_BIT_P99_TARGET = 173 / 255


def intensity_scale(model_scale: float, bits_stored: int | None,
                    full_scale: float | None, p99: float | None = None) -> tuple[float, str]:
    """The divisor of the model intensities for a series, and why (for the report).

    ``model_scale`` (the paper's 2500, from the model card) for 9-bit and deeper pixel data.
    For 8-bit data (a PACS's 8-bit export, a screen capture) the series' full scale
    (255 when not rescaled): 8-bit pixels are a display rendering whose brightest value is
    255, and the model was trained on 8-bit real images divided by 255; divided by 2500 they
    would reach at most 0.1, a tenth of the intensities the model knows. ``p99`` (the series'
    99th percentile, 8-bit only): below ``EIGHT_BIT_P99_MIN`` of the full scale, the divisor
    brings it to ``EIGHT_BIT_P99_TARGET`` instead.
    """
    if bits_stored is not None and bits_stored <= EIGHT_BIT and full_scale and full_scale > 0:
        if p99 is not None and 0 < p99 < EIGHT_BIT_P99_MIN * full_scale:
            scale = float(p99) / EIGHT_BIT_P99_TARGET
            return scale, (f"{bits_stored}-bit pixel data dimmer than the training images "
                           f"(99th percentile {p99:g} of {full_scale:g}, below "
                           f"{EIGHT_BIT_P99_MIN * full_scale:g}): divided by {scale:.4g}, so "
                           f"that its 99th percentile reads {EIGHT_BIT_P99_TARGET:.3f}, the "
                           "training images' median")
        return float(full_scale), (f"{bits_stored}-bit pixel data: divided by its full "
                                   f"scale {full_scale:g}")
    return float(model_scale), f"divided by {model_scale:g} (the paper's scale)"


def canonical_orientation(image_orientation: tuple[float, ...] | None
                          ) -> tuple[bool, bool, bool]:
    """(transpose, flip_rows, flip_cols) that put superior at row 0 and anterior at col 0.

    ImageOrientationPatient holds the LPS direction of increasing column index (first three
    cosines) and of increasing row index (last three). LPS: +y is posterior, +z superior.
    None (unknown orientation) means no change.
    """
    if image_orientation is None:
        return False, False, False
    iop = np.asarray(image_orientation, dtype=float)
    along_cols, along_rows = iop[:3], iop[3:]  # directions of increasing col / row index
    transpose = abs(along_cols[2]) > abs(along_rows[2])  # columns run superior-inferior
    if transpose:
        along_cols, along_rows = along_rows, along_cols
    flip_rows = along_rows[2] > _MIN_COSINE  # row index increases upwards
    flip_cols = along_cols[1] < -_MIN_COSINE  # col index increases anteriorly
    return bool(transpose), bool(flip_rows), bool(flip_cols)


def whole_fov_shape(source_shape: tuple[int, int], pixel_spacing_mm: tuple[float, float],
                    image_orientation: tuple[float, ...] | None = None, *,
                    spacing_mm: float = MODEL_SPACING_MM, stride: int = 16,
                    max_fov_mm: float = MAX_FOV_MM) -> tuple[int, int]:
    """Model-grid (rows, cols) that hold the whole (oriented) slice at ``spacing_mm``,
    padded up to a multiple of ``stride``; each axis at most ``max_fov_mm`` (then padded)."""
    transpose = canonical_orientation(image_orientation)[0]
    shape, spacing = tuple(source_shape), tuple(pixel_spacing_mm)
    if transpose:
        shape, spacing = shape[::-1], spacing[::-1]
    out = []
    for n, sp in zip(shape, spacing):
        mm = min(float(n) * float(sp), float(max_fov_mm))
        px = int(np.ceil(mm / spacing_mm - 1e-6))
        out.append(int(stride * np.ceil(px / stride)))
    return out[0], out[1]


def preprocess_slice(image: np.ndarray, pixel_spacing_mm: tuple[float, float],
                     image_orientation: tuple[float, ...] | None = None, *,
                     spacing_mm: float = MODEL_SPACING_MM,
                     shape: tuple[int, int] | None = MODEL_SHAPE, stride: int = 16,
                     scale: float = INTENSITY_SCALE,
                     clip: float = INTENSITY_CLIP) -> tuple[np.ndarray, SliceTransform]:
    """Resample, orient, crop/pad and scale one source slice for the network.

    Parameters
    ----------
    image : ndarray (rows, cols)
        Source slice in modality units (RescaleSlope/Intercept applied).
    pixel_spacing_mm : (float, float)
        (row, col) PixelSpacing.
    image_orientation : 6 floats, optional
        ImageOrientationPatient; decides the flips (None: keep as stored).
    spacing_mm, shape, scale, clip
        Model grid spacing and (rows, cols), intensity divisor and upper clip. ``shape``
        None: the whole field of view (`whole_fov_shape`, padded to ``stride``).

    Returns
    -------
    model_input : ndarray float32 (shape)
        Values in [0, clip]; 0 outside the source field of view.
    transform : SliceTransform
        Maps points and label maps between the two grids.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {image.shape}")
    transform = slice_transform(image.shape, pixel_spacing_mm, image_orientation,
                                spacing_mm=spacing_mm, shape=shape, stride=stride, scale=scale,
                                clip=clip)
    return transform.scale_intensity(transform.image_to_model(image)), transform


def slice_transform(source_shape: tuple[int, int], pixel_spacing_mm: tuple[float, float],
                    image_orientation: tuple[float, ...] | None = None, *,
                    spacing_mm: float = MODEL_SPACING_MM,
                    shape: tuple[int, int] | None = MODEL_SHAPE, stride: int = 16,
                    scale: float = INTENSITY_SCALE, clip: float = INTENSITY_CLIP
                    ) -> SliceTransform:
    """The `SliceTransform` of a source slice geometry (see `preprocess_slice`)."""
    if len(pixel_spacing_mm) != 2 or min(pixel_spacing_mm) <= 0:
        raise ValueError(f"invalid pixel spacing {pixel_spacing_mm}")
    if shape is None:
        shape = whole_fov_shape(source_shape, pixel_spacing_mm, image_orientation,
                                spacing_mm=spacing_mm, stride=stride)
    transpose, flip_rows, flip_cols = canonical_orientation(image_orientation)
    return SliceTransform(
        source_shape=(int(source_shape[0]), int(source_shape[1])),
        source_spacing_mm=(float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])),
        model_shape=(int(shape[0]), int(shape[1])), model_spacing_mm=float(spacing_mm),
        transpose=transpose, flip_rows=flip_rows, flip_cols=flip_cols,
        scale=float(scale), clip=float(clip))


def preprocess_volume(pixels: np.ndarray, pixel_spacing_mm: tuple[float, float],
                      image_orientation: tuple[float, ...] | None = None, **kw: Any
                      ) -> tuple[np.ndarray, SliceTransform]:
    """`preprocess_slice` of every slice of ``pixels`` (N, rows, cols), one shared transform.

    Returns (N, H, W) float32 model inputs and the transform (the same for every slice of a
    series: one geometry).
    """
    pixels = np.asarray(pixels)
    out, transform = volume_frame(pixels, pixel_spacing_mm, image_orientation, **kw)
    preprocess_into(out, pixels, transform, slice(0, len(pixels)))
    return out, transform


def volume_frame(pixels: np.ndarray, pixel_spacing_mm: tuple[float, float],
                 image_orientation: tuple[float, ...] | None = None, **kw: Any
                 ) -> tuple[np.ndarray, SliceTransform]:
    """The empty (N, H, W) float32 model inputs of ``pixels`` (N, rows, cols) and their
    shared transform: what `preprocess_volume` fills, for a caller that fills it slice by
    slice (`preprocess_into`)."""
    if pixels.ndim != 3 or len(pixels) == 0:
        raise ValueError(f"expected (N, rows, cols) slices, got shape {pixels.shape}")
    transform = slice_transform(pixels.shape[1:], pixel_spacing_mm, image_orientation, **kw)
    return np.empty((len(pixels), *transform.model_shape), dtype=np.float32), transform


def preprocess_into(out: np.ndarray, pixels: np.ndarray, transform: SliceTransform,
                    which: slice) -> None:
    """``out[which]`` = the model inputs of ``pixels[which]`` (as `preprocess_volume`): lets
    a caller preprocess a series slice by slice, e.g. each just before the network needs it."""
    for i in range(*which.indices(len(pixels))):
        out[i] = transform.scale_intensity(transform.image_to_model(pixels[i]))
