"""The per-bucket metric tables under their former name; they live in :mod:`ochmr_lit.eval.bucket_tables`.

Kept while :mod:`ochmr_lit.lit.mesh_regressor` still names this module.
"""

from ochmr_lit.eval.bucket_tables import (
    BUCKET_COLUMNS,
    BUCKET_ROWS,
    ERROR_METRICS,
    bucket_table,
    log_bucket_table,
    markdown_table,
)

__all__ = ["BUCKET_COLUMNS", "BUCKET_ROWS", "ERROR_METRICS", "bucket_table", "log_bucket_table", "markdown_table"]
