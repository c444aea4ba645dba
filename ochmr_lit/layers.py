"""The package's layers, lowest first: a module imports from its own layer and the layers below it, never above.

``tests/test_layers.py`` parses every import of ``ochmr_lit`` (function-level ones included, and the package
``__init__`` that importing a submodule runs) and fails on one that points up, or on a module placed nowhere.
When a lower module needs code of a higher one, move that code down to its lowest user instead of importing
upwards (or hiding the import in a function); give a new module its place here.

Names are modules or packages relative to ``ochmr_lit`` (``__init__`` is ``ochmr_lit/__init__.py`` itself). A
package's name places all its modules except those placed by a longer name.
"""

from __future__ import annotations

#: (layer, the modules and packages in it), lowest layer first.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # no imports from the package, or only from each other
    ("foundation", ("__init__", "layers", "configs", "console", "progress", "paths", "errors", "safe_pickle",
                    "hardware", "geometry", "procrustes", "setting_types", "lazy_exports",
                    "checkpoint_files", "command_choices")),
    # drawing and mesh rendering on arrays; the vis package's other modules are placed one by one below
    ("drawing", ("vis", "vis.draw", "vis.render", "vis.overlays", "vis.figures", "vis.figure_people",
                 "vis.paper_figure", "vis.comparison_figure")),
    ("body model", ("body",)),
    ("networks and metrics", ("models", "metrics")),
    # protocols, per-bucket tables and the results files an evaluation writes (read without Lightning)
    ("evaluation", ("eval",)),
    # samples, datasets, transforms, centermaps, SynthCrowd generation, dataset preparation, data modules
    ("data", ("data",)),
    # figures of data-module batches (normalised crops and their centermaps)
    ("data figures", ("vis.centermaps",)),
    ("Lightning modules", ("lit",)),
    ("inference", ("inference", "vis.compare_settings", "vis.comparison_run")),
    ("runner", ("runner", "config_checks", "config_signatures")),
    # commands: nothing in the package imports them
    ("entry points", ("fit", "evaluate", "predict", "prepare", "doctor", "reproduce", "bench", "vis.compare",
                      "vis.curves", "data.synthcrowd.__main__")),
)

_INDEX: dict[str, int] = {name: level for level, (_, names) in enumerate(LAYERS) for name in names}


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of a dotted module name such as ``ochmr_lit.data.schema``; None if unplaced."""
    parts = module.split(".")
    if parts[0] != "ochmr_lit":
        return None
    if len(parts) == 1:
        return _INDEX.get("__init__")
    for end in range(len(parts), 1, -1):
        level = _INDEX.get(".".join(parts[1:end]))
        if level is not None:
            return level
    return None
