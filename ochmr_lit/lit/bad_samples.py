"""The bad-sample monitor and step helpers under their former name; they live in :mod:`ochmr_lit.data.bad_samples`.

Kept while the callback configuration (``callbacks/default.yaml``) and :mod:`ochmr_lit.lit.mesh_regressor` still
name this module.
"""

from ochmr_lit.data.bad_samples import BadSampleMonitor, TooManyBadSamplesError, skip_empty_batch, skipped_step_loss

__all__ = ["BadSampleMonitor", "TooManyBadSamplesError", "skip_empty_batch", "skipped_step_loss"]
