"""Reproduction of the paper's tables: ``python -m ochmr_lit.reproduce table=<name> [preset=cpu|paper]``.

``tables`` says what each table trains and evaluates; ``run`` trains the rows seed by seed and writes
``table.md`` / ``table.json`` (``formatting`` the Markdown); ``runs`` trains, evaluates and reuses one run;
``mesh_table`` and ``sweep_table`` turn finished runs into a table's cells; ``simulated_detector`` makes
SynthCrowd's detector boxes, ``sweep`` scores a checkpoint on detector boxes at every confidence threshold.
"""
