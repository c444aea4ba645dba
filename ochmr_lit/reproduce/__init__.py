"""Reproduction of the paper's tables: ``python -m ochmr_lit.reproduce table=<name> [preset=cpu|paper]``.

``tables`` says what each table trains and evaluates, ``run`` trains/evaluates (reusing finished runs) and
writes ``table.md`` / ``table.json``, ``simulated_detector`` makes SynthCrowd's detector boxes, ``sweep``
scores a checkpoint on detector boxes at every confidence threshold.
"""
