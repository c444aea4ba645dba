"""The predicted body centres a regressor on ``context_source=predicted`` reads: computed once per split."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ochmr_lit.data.predicted_centres import predict_centres, save_predicted_centres
from ochmr_lit.progress import ProgressLog

log = logging.getLogger(__name__)


def cache_predicted_centres(data_cfg: DictConfig, net: torch.nn.Module, splits: tuple[str, ...], out_dir: Path,
                            input_size: int, bf16: bool, checkpoint: str) -> str:
    """Run a frozen context estimator once over each split's unaugmented crops; write ``<split>.npz``.

    Returns the folder for ``data.predicted_centres``. Existing files are kept (a resumed stage reuses them);
    every DDP rank computes the same deterministic values and replaces the file atomically.
    """
    data = OmegaConf.to_container(data_cfg, resolve=True)
    data["predicted_centres"] = None  # the crops of the annotated records, whatever the config says
    datamodule = instantiate(data, _convert_="all")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = net.to(device, memory_format=torch.channels_last)  # 1.3x faster inference on CPU (HRNet-W16, 64 px)
    for split in splits:
        target = out_dir / f"{split}.npz"
        if target.is_file():
            continue
        started = time.perf_counter()
        loader = datamodule.unaugmented_loader(split)
        progress = ProgressLog(log, f"predicting body centres of the {split} crops", len(loader.sampler), "crops")
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            table = predict_centres(net, loader, input_size, progress=progress)
        save_predicted_centres(target, table, checkpoint=checkpoint)
        log.info("predicted body centres of %d %s crops in %.1f s -> %s", len(table), split,
                 time.perf_counter() - started, target)
    return str(out_dir)
