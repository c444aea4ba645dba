"""Drawing on RGB images: keypoints and skeletons, boxes, masks, and image grids (OpenCV underneath).

Images are (H, W, 3) uint8 RGB. Keypoint coordinates follow the COCO keypoint convention used by the
datasets (pixel ``(0, 0)`` is the centre of the top-left pixel); points are drawn with OpenCV's sub-pixel
``shift`` so they land where the coordinates say, not at the truncated integer pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "COCO17_SKELETON",
    "VISIBILITY_COLORS",
    "draw_boxes",
    "draw_keypoints",
    "draw_labels",
    "draw_person_boxes",
    "draw_text",
    "image_grid",
    "label_scale",
    "line_width",
    "overlay_mask",
    "place_labels",
    "save_image",
    "text_size",
]

#: COCO's person skeleton as 0-based index pairs into COCO-17 (the category's ``skeleton`` minus 1).
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
    (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

#: Colours (RGB) of OCHuman-style visibility codes: 1 visible, 2 self-occluded, 3 occluded by another person.
VISIBILITY_COLORS: dict[int, tuple[int, int, int]] = {1: (40, 230, 60), 2: (250, 210, 20), 3: (240, 40, 40)}

_SHIFT = 4  # OpenCV sub-pixel bits: coordinates are passed x 16
_SCALE = 1 << _SHIFT
_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Colour (RGB) of the dark outline around person boxes and labels: keeps them visible on light and dark images.
OUTLINE_COLOR: tuple[int, int, int] = (0, 0, 0)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


def _fixed(point: np.ndarray) -> tuple[int, int]:
    """Pixel coordinates (centre convention) to OpenCV's fixed-point coordinates."""
    return int(round(float(point[0]) * _SCALE)), int(round(float(point[1]) * _SCALE))


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    visibility: np.ndarray | None = None,
    skeleton: Sequence[tuple[int, int]] | None = COCO17_SKELETON,
    color: tuple[int, int, int] | None = None,
    radius: int = 2,
    thickness: int = 1,
    line_color: tuple[int, int, int] = (235, 235, 235),
) -> np.ndarray:
    """Keypoints (and the skeleton between them) drawn on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: (J, 2) pixels, or (J, 3) ``[x, y, v]``; without ``visibility``, points with v > 0 are
            drawn.
        visibility: (J,) int codes; 0 is not drawn, others are coloured by :data:`VISIBILITY_COLORS`
            (COCO's v flag 1/2 works too: v=2 shows as "self-occluded" yellow unless ``color`` is given).
        skeleton: index pairs joined by lines when both ends are drawn; None draws points only.
        color: one RGB colour for every point instead of the visibility colours.
        radius, thickness: in pixels.
        line_color: RGB of the skeleton lines.
    Returns:
        (H, W, 3) uint8 RGB, a new array.
    """
    out = _check_image(image).copy()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be (J, 2) or (J, 3), got {kp.shape}")
    if visibility is None:
        codes = (kp[:, 2] > 0).astype(np.int64) if kp.shape[1] == 3 else np.ones(len(kp), np.int64)
    else:
        codes = np.asarray(visibility, dtype=np.int64).reshape(-1)
        if len(codes) != len(kp):
            raise ValueError(f"visibility has {len(codes)} entries for {len(kp)} keypoints")
    drawn = (codes > 0) & np.all(np.isfinite(kp[:, :2]), axis=1)
    for a, b in skeleton or ():
        if a < len(kp) and b < len(kp) and drawn[a] and drawn[b]:
            cv2.line(out, _fixed(kp[a]), _fixed(kp[b]), line_color, thickness, cv2.LINE_AA, _SHIFT)
    for j in np.flatnonzero(drawn):
        c = color if color is not None else VISIBILITY_COLORS.get(int(codes[j]), (255, 255, 255))
        cv2.circle(out, _fixed(kp[j]), radius * _SCALE, tuple(int(x) for x in c), -1, cv2.LINE_AA, _SHIFT)
    return out


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    color: tuple[int, int, int] = (255, 255, 255),
    thickness: int = 1,
) -> np.ndarray:
    """``xywh`` boxes (COCO's corner convention: a box covers pixels ``x .. x + w - 1``) on a copy.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) ``[x, y, w, h]`` pixels.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = _check_image(image).copy()
    for x, y, w, h in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        # A box edge at x lies on the left border of pixel x, i.e. at x - 0.5 in pixel-centre units.
        p0 = _fixed(np.array([x - 0.5, y - 0.5]))
        p1 = _fixed(np.array([x + w - 0.5, y + h - 0.5]))
        cv2.rectangle(out, p0, p1, color, thickness, cv2.LINE_AA, _SHIFT)
    return out


def line_width(image_size: tuple[int, int]) -> int:
    """Box line width in px for an image of ``(W, H)`` px: ``max(2, round(max(W, H) / 300))``.

    Figures put four such panels side by side and are usually viewed shrunk to a screen's width (a 640 px
    image: 2 px lines shrink to about 1.2 px at 1600 px for the figure), so lines grow with the image size.
    """
    return max(2, int(round(max(image_size) / 300.0)))


def label_scale(image_size: tuple[int, int]) -> float:
    """OpenCV font scale whose digits are about ``max(9, H / 28)`` px tall for an image of ``(W, H)`` px."""
    height = max(9.0, image_size[1] / 28.0)
    return height / 22.0  # FONT_HERSHEY_SIMPLEX digits are 22 px tall at scale 1


def text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int]:
    """``(width, height)`` px of ``text`` at font ``scale`` (height includes the part below the baseline)."""
    (w, h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    return int(w), int(h + baseline)


def draw_text(image: np.ndarray, text: str, top_left: tuple[int, int], scale: float,
              color: tuple[int, int, int] = (0, 0, 0), thickness: int = 1) -> None:
    """Writes ``text`` in place with its box's top-left corner at ``top_left`` px (see :func:`text_size`)."""
    (_, h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    cv2.putText(image, text, (int(top_left[0]), int(top_left[1]) + h), _FONT, scale, tuple(int(c) for c in color),
                thickness, cv2.LINE_AA)


def place_labels(anchors: np.ndarray, sizes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Top-left corners of labels that sit just above their anchors, inside the image, without overlapping.

    Labels are placed in order; one that would overlap a placed label (or leave the image) is moved up or down
    by whole label heights (nearest free place first), or stays at its first place when there is none.

    Args:
        anchors: (N, 2) px, the bottom-centre each label should sit on.
        sizes: (N, 2) ``(width, height)`` px of each label.
        image_size: ``(W, H)`` px.
    Returns:
        (N, 2) int64 top-left corners px.
    """
    width, height = image_size
    anchors = np.asarray(anchors, np.float64).reshape(-1, 2)
    sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
    placed = np.zeros((len(anchors), 2), np.int64)
    rects: list[tuple[int, int, int, int]] = []
    for k, ((ax, ay), (w, h)) in enumerate(zip(anchors, sizes, strict=True)):
        x = int(np.clip(round(ax - w / 2.0), 0, max(width - w, 0)))
        y0 = int(np.clip(round(ay) - h, 0, max(height - h, 0)))
        candidates = [y0] + [y0 + sign * step * h for step in range(1, 2 * len(anchors) + 2) for sign in (-1, 1)]
        free = [y for y in candidates if 0 <= y <= height - h
                and not any(x < rx1 and rx0 < x + w and y < ry1 and ry0 < y + h for rx0, ry0, rx1, ry1 in rects)]
        y = free[0] if free else y0
        placed[k] = (x, y)
        rects.append((x, y, x + w, y + h))
    return placed


def _label_box(text: str, scale: float) -> tuple[int, int]:
    """``(width, height)`` px of a label: the text with a 2 px margin."""
    w, h = text_size(text, scale)
    return w + 4, h + 4


def draw_labels(image: np.ndarray, labels: Sequence[str], anchors: np.ndarray,
                colors: Sequence[tuple[int, int, int]], scale: float | None = None) -> np.ndarray:
    """Labels (e.g. person numbers) on a copy of ``image``: each a filled box in its colour with a dark border
    and dark or light text, sitting on its anchor (:func:`place_labels`: inside the image, not overlapping).

    Args:
        image: (H, W, 3) uint8 RGB.
        labels: N texts; anchors: (N, 2) px bottom-centres; colors: N RGB uint8 tuples.
        scale: font scale; None = :func:`label_scale` of the image.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = _check_image(image).copy()
    if len(labels) == 0:
        return out
    height, width = out.shape[:2]
    scale = label_scale((width, height)) if scale is None else scale
    sizes = np.array([_label_box(t, scale) for t in labels], np.int64)
    for text, (x, y), (w, h), color in zip(labels, place_labels(anchors, sizes, (width, height)), sizes, colors,
                                           strict=True):
        color = tuple(int(c) for c in color)
        cv2.rectangle(out, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), color, -1)
        cv2.rectangle(out, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), OUTLINE_COLOR, 1)
        ink = (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 128 else (255, 255, 255)
        draw_text(out, text, (int(x) + 2, int(y) + 2), scale, ink)
    return out


def draw_person_boxes(image: np.ndarray, boxes: np.ndarray, colors: Sequence[tuple[int, int, int]],
                      labels: Sequence[str] | None = None, thickness: int | None = None) -> np.ndarray:
    """Each person's ``xywh`` box in its own colour with a dark outline, and its label above it, on a copy.

    Every box is drawn however small: a box a few pixels wide becomes a coloured ring (or a filled square)
    ringed in :data:`OUTLINE_COLOR`, so it shows on light and dark images alike.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) ``[x, y, w, h]`` px (COCO's corner convention, as :func:`draw_boxes`).
        colors: N RGB uint8 tuples.
        labels: N texts drawn above the boxes' top-left corners (:func:`draw_labels`); None = no labels.
        thickness: line width px; None = :func:`line_width` of the image.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = _check_image(image)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(colors) != len(boxes) or (labels is not None and len(labels) != len(boxes)):
        raise ValueError(f"{len(boxes)} boxes need as many colors and labels, got {len(colors)} and "
                         f"{None if labels is None else len(labels)}")
    thickness = line_width(out.shape[1::-1]) if thickness is None else int(thickness)
    for box, color in zip(boxes, colors, strict=True):
        out = draw_boxes(out, box[None], color=OUTLINE_COLOR, thickness=thickness + 2)
        out = draw_boxes(out, box[None], color=tuple(int(c) for c in color), thickness=thickness)
    if labels is None:
        return out.copy() if out is image else out
    scale = label_scale(out.shape[1::-1])
    half_widths = np.array([_label_box(t, scale)[0] / 2.0 for t in labels])
    anchors = np.c_[boxes[:, 0] - 0.5 - thickness / 2.0 + half_widths, boxes[:, 1] - 0.5 - thickness / 2.0]
    return draw_labels(out, labels, anchors, colors, scale)


def overlay_mask(
    image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 0, 0), alpha: float = 0.4
) -> np.ndarray:
    """``image`` with ``mask`` (H, W) bool tinted ``alpha * color + (1 - alpha) * image``; uint8 RGB copy."""
    out = _check_image(image).copy()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != out.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {out.shape[:2]}")
    tint = np.asarray(color, dtype=np.float32)
    out[mask] = np.rint(alpha * tint + (1.0 - alpha) * out[mask].astype(np.float32)).astype(np.uint8)
    return out


def image_grid(images: Sequence[np.ndarray], ncols: int = 4, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Images tiled row by row, each cell the size of the largest image (smaller ones top-left aligned).

    Args:
        images: (H_i, W_i, 3) uint8 RGB images.
        ncols: cells per row.
        pad: pixels between cells and around the grid.
        pad_value: grey level of the padding.
    Returns:
        (rows * (H + pad) + pad, ncols' * (W + pad) + pad, 3) uint8, ``ncols' = min(ncols, len(images))``.
    """
    if len(images) == 0:
        raise ValueError("image_grid needs at least one image")
    images = [_check_image(im) for im in images]
    cell_h = max(im.shape[0] for im in images)
    cell_w = max(im.shape[1] for im in images)
    ncols = max(1, min(ncols, len(images)))
    nrows = (len(images) + ncols - 1) // ncols
    grid = np.full((nrows * (cell_h + pad) + pad, ncols * (cell_w + pad) + pad, 3), pad_value, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, ncols)
        y, x = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
        grid[y : y + im.shape[0], x : x + im.shape[1]] = im
    return grid


def save_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Writes an RGB image (format from the suffix: .png, .jpg); returns the path.

    Raises:
        OSError: OpenCV could not write the file (unknown suffix or unwritable folder).
    """
    path = Path(path)
    image = _check_image(image)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1]), params):
        raise OSError(f"could not write image {path} (use a .png or .jpg name in an existing folder)")
    return path
