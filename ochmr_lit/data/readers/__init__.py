"""Record readers: each turns a dataset's official files into :class:`~ochmr_lit.data.schema.PersonRecord` lists.

They are not torch Datasets (those are in :mod:`ochmr_lit.data.dataset`); the data modules read records with them.
"""
