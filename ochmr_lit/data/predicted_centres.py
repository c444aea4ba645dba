"""Predicted context as body-centre coordinates: decoded from the context estimator, cached, rendered per crop.

The regressor's *predicted* context is defined as the body centres the frozen context estimator finds in a
person's crop, rendered as Gaussian centermaps exactly like the ground-truth ones (``render_centermaps``):
the local map's arg-max is the target person's centre, the global map's local maxima above a threshold are
everyone's centres. Rendering instead of passing the raw maps on has two consequences the framework relies on:

* the estimator runs once per person (its unaugmented crop) instead of on every augmented crop of every
  epoch (at CPU sizes the frozen HRNet-W32 forward costs more than the regressor's whole training step):
  :func:`predict_centres` computes the centres, :func:`save_predicted_centres` writes them, and the data
  module renders them into each augmented crop (``data.predicted_centres``);
* a crop evaluated without augmentation gets the same context from the cache as from running the
  estimator on it (:func:`rerender_context`, used on the fly by inference), up to sub-pixel rounding.

The cache is an ``.npz`` with ``sample_id (N,)`` str, ``centre (N, 2)`` image px, ``others_offset (N+1,)``
int64 and ``others (M, 2)`` image px (the global-map centres of person ``i`` are
``others[others_offset[i]:others_offset[i+1]]``), and ``checkpoint`` (the estimator it came from).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ochmr_lit.data.centermaps import gaussian_maps
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError
from ochmr_lit.geometry import apply_affine, box_to_center_size, invert_affine
from ochmr_lit.progress import ProgressLog

#: A global-map local maximum counts as a body centre from this height on (maps peak at 1).
GLOBAL_PEAK_THRESHOLD = 0.3


def decode_centres(maps: torch.Tensor, threshold: float = GLOBAL_PEAK_THRESHOLD
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Body centres of [local, global] centermaps, in map pixels (pixel centres at integers).

    The local centre is the arg-max refined to sub-pixel by a parabola through the log-intensities around
    it (exact for Gaussian peaks); global centres are the 3x3 local maxima of the global map at or above ``threshold``.

    Args:
        maps: (B, 2, h, w) predicted maps.
        threshold: lowest global-map peak kept.
        progress: counts the crops as they are done (logs now and then), if given.
    Returns:
        ``(local (B, 2) float32 [x, y], [global (K_b, 2) float32 for each b])``.
    """
    if maps.ndim != 4 or maps.shape[1] != 2:
        raise ValueError(f"decode_centres expects (B, 2, h, w) [local, global] maps, got {tuple(maps.shape)}")
    maps = maps.detach().float()
    b, _, h, w = maps.shape
    local = maps[:, 0].clamp(min=0)
    flat = local.reshape(b, -1).argmax(dim=-1)
    px, py = flat % w, torch.div(flat, w, rounding_mode="floor")
    # Sub-pixel: a parabola through the log-intensities of the arg-max and its two neighbours per axis
    # (exact for a Gaussian peak, as in DARK's refinement), clamped to half a pixel.
    logs = F.pad(local, (1, 1, 1, 1)).clamp(min=1e-6).log()
    rows = torch.arange(b)
    centre = logs[rows, py + 1, px + 1]

    def refine(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        curvature = before + after - 2.0 * centre
        step = 0.5 * (before - after) / torch.where(curvature < -1e-6, curvature, torch.full_like(curvature, -1e6))
        return step.clamp(-0.5, 0.5)

    dx = refine(logs[rows, py + 1, px], logs[rows, py + 1, px + 2])
    dy = refine(logs[rows, py, px + 1], logs[rows, py + 2, px + 1])
    local_xy = torch.stack([px + dx, py + dy], dim=-1).float()

    glob = maps[:, 1]
    peaks = (glob == F.max_pool2d(glob[:, None], 3, stride=1, padding=1)[:, 0]) & (glob >= threshold)
    others = []
    for i in range(b):
        ys, xs = torch.nonzero(peaks[i], as_tuple=True)
        others.append(torch.stack([xs, ys], dim=-1).float())
    return local_xy, others


def render_maps(local: torch.Tensor, others: Sequence[torch.Tensor], size: int, sigma: float) -> torch.Tensor:
    """[local, global] Gaussian centermaps from map-pixel centres (the rendering of ground-truth maps).

    Args:
        local: (B, 2) map px. others: B tensors (K_b, 2) map px. size: map side. sigma: map px.
    Returns:
        (B, 2, size, size) float32.
    """
    maps = torch.zeros(local.shape[0], 2, size, size)
    maps[:, 0] = gaussian_maps(local.cpu(), size, sigma)
    for i, points in enumerate(others):
        if len(points):
            maps[i, 1] = gaussian_maps(points.cpu(), size, sigma).amax(dim=0)
    return maps.to(local.device)


def rerender_context(maps: torch.Tensor, sigma: float = 2.0, threshold: float = GLOBAL_PEAK_THRESHOLD
                     ) -> torch.Tensor:
    """Predicted context of a batch on the fly: decode the estimator's maps, render them as Gaussians.

    Args:
        maps: (B, 2, h, w) estimator output. sigma: Gaussian sigma in map px (``data.sigma``).
    Returns:
        (B, 2, h, w) float32.
    """
    local, others = decode_centres(maps, threshold)
    return render_maps(local, others, maps.shape[-1], sigma)


def map_to_image(points: np.ndarray, crop_affine: np.ndarray, crop_size: int, map_size: int) -> np.ndarray:
    """Map-pixel points (K, 2) of one crop to image pixels through the inverse crop affine (2, 3)."""
    ratio = map_size / crop_size
    in_crop = (np.asarray(points, np.float64).reshape(-1, 2) + 0.5) / ratio - 0.5
    return apply_affine(invert_affine(np.asarray(crop_affine, np.float64)), in_crop)


@torch.no_grad()
def predict_centres(net: torch.nn.Module, batches: Iterable[dict], input_size: int | None = None,
                    threshold: float = GLOBAL_PEAK_THRESHOLD,
                    progress: ProgressLog | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run a frozen context estimator once over unaugmented crops; body centres per sample in image px.

    Args:
        net: the context estimator (eval mode), ``(B, 3, s, s) -> (B, 2, s/4, s/4)``.
        batches: evaluation batches (``image``, ``crop_affine``, ``sample_id``), e.g. a val/test loader.
        input_size: side the crops are resized to for the estimator (its training size); None keeps them.
        threshold: lowest global-map peak kept.
        progress: counts the crops as they are done (logs now and then), if given.
    Returns:
        ``{sample_id: (centre (2,), others (K, 2))}`` float64 image pixels.
    """
    weight = next(net.parameters())
    memory = torch.channels_last if weight.ndim == 4 and weight.is_contiguous(
        memory_format=torch.channels_last) else torch.contiguous_format
    table: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for batch in batches:
        images = batch["image"].to(weight.device)
        crop_size = images.shape[-1]
        if input_size and crop_size != input_size:
            images = F.interpolate(images, size=(input_size, input_size), mode="bilinear", align_corners=False)
        with torch.inference_mode():
            maps = net(images.contiguous(memory_format=memory)).float().cpu()
        local, others = decode_centres(maps, threshold)
        affines = batch["crop_affine"].double().numpy()
        map_size = maps.shape[-1]
        for i, sample_id in enumerate(batch["sample_id"]):
            centre = map_to_image(local[i].numpy(), affines[i], crop_size, map_size)[0]
            table[str(sample_id)] = (centre, map_to_image(others[i].numpy(), affines[i], crop_size, map_size))
        if progress is not None:
            progress.update(len(batch["sample_id"]))
    return table


def save_predicted_centres(path: str | Path, table: dict[str, tuple[np.ndarray, np.ndarray]],
                           checkpoint: str = "") -> Path:
    """Write the cache atomically (temp file + rename); see the module docstring for the arrays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = sorted(table)
    others = [np.asarray(table[k][1], np.float64).reshape(-1, 2) for k in ids]
    offsets = np.concatenate([[0], np.cumsum([len(o) for o in others])]).astype(np.int64)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # one per process: DDP ranks write the same file
    np.savez(tmp, sample_id=np.asarray(ids, dtype=str),
             centre=np.asarray([table[k][0] for k in ids], np.float64).reshape(-1, 2),
             others_offset=offsets, others=np.concatenate(others) if others else np.zeros((0, 2)),
             checkpoint=np.asarray(str(checkpoint)))
    tmp.replace(path)
    return path


def load_predicted_centres(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a cache written by :func:`save_predicted_centres`; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"data.predicted_centres={path}: no such file; it is written by the pipeline's "
                               "context stage (task=pipeline), or set data.predicted_centres=null")
    with np.load(path, allow_pickle=False) as data:
        missing = {"sample_id", "centre", "others_offset", "others"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: not a predicted-centres file (missing arrays {sorted(missing)}); "
                             "regenerate it with the context stage or point data.predicted_centres elsewhere")
        ids, centre = data["sample_id"], data["centre"]
        offsets, others = data["others_offset"], data["others"]
    if centre.shape != (len(ids), 2) or offsets.shape != (len(ids) + 1,) or others.shape != (offsets[-1], 2):
        raise ValueError(f"{path}: inconsistent shapes (sample_id {ids.shape}, centre {centre.shape}, "
                         f"others_offset {offsets.shape}, others {others.shape}); regenerate the file")
    return {str(k): (centre[i], others[offsets[i]:offsets[i + 1]]) for i, k in enumerate(ids)}


def centre_errors(records: Sequence[PersonRecord], table: dict[str, tuple[np.ndarray, np.ndarray]],
                  scale_factor: float) -> dict[str, np.ndarray]:
    """How far each person's cached target centre lies from the annotated one.

    Args:
        records: the split's annotated records, in dataset order (their index is ``sample_index``).
        table: the cache (:func:`load_predicted_centres`).
        scale_factor: the crop side's multiple of the box's longer side (the data module's transform).
    Returns:
        ``sample_index (N,)``, ``sample_id (N,)``, ``centre_error_px (N,)`` image px and ``centre_error (N,)``
        as a fraction of the person's crop side (the context evaluation's ``pck_centre`` counts those under
        its threshold, 0.05).
    """
    predicted = np.stack([np.asarray(table[r.sample_id][0], np.float64).reshape(2) for r in records])
    annotated = np.stack([np.asarray(r.center, np.float64).reshape(-1)[:2] for r in records])
    _, sides = box_to_center_size(np.stack([np.asarray(r.box, np.float64) for r in records]), scale_factor)
    error_px = np.linalg.norm(predicted - annotated, axis=1)
    return {"sample_index": np.arange(len(records)), "sample_id": np.array([r.sample_id for r in records]),
            "centre_error_px": error_px, "centre_error": error_px / np.asarray(sides, np.float64)}


def apply_predicted_centres(records: Sequence[PersonRecord], table: dict[str, tuple[np.ndarray, np.ndarray]],
                            source: str | Path = "the predicted-centres cache") -> list[PersonRecord]:
    """Records whose ``center`` is the predicted local centre and ``image_centers`` the predicted global ones.

    The global centres are used as found (the target's own global peak included when the estimator found
    it), so a cached crop renders the same maps as :func:`rerender_context` on that crop.

    Raises:
        KeyError: a record has no cached prediction (the cache belongs to other data), naming the file.
    """
    absent = [r.sample_id for r in records if r.sample_id not in table]
    if absent:
        raise KeyError(f"{source}: no predicted centres for {len(absent)} of {len(records)} samples (first: "
                       f"{absent[0]}); it was computed for other data: delete it to recompute, or set "
                       "data.predicted_centres=null")
    out = []
    for record in records:
        centre, others = table[record.sample_id]
        centre = np.asarray(centre, np.float64).reshape(2)
        others = np.asarray(others, np.float64).reshape(-1, 2)
        out.append(replace(record, center=centre, image_centers=others))
    return out
