"""A restricted unpickler for body-model files (official SMPL ``.pkl``, cleaned ``.pkl``).

``pickle.load`` runs whatever callables a file names, so an untrusted ``.pkl`` can execute code. The
official SMPL files additionally pickle ``chumpy`` objects, and chumpy does not import on Python 3.11
with numpy 2. :func:`safe_load_pickle` solves both: it resolves only an allow-list of globals

- numpy arrays, dtypes and scalars (including the numpy 1.x ``numpy.core`` names),
- scipy sparse matrices (rebuilt through their public constructors, old and new module names),
- plain containers (``set``, ``frozenset``, ``complex``, ``bytearray``, ``object``),
- ``chumpy`` classes, read as inert stand-ins and turned into numpy arrays afterwards: ``Ch`` (its
  array lives in the pickled state under ``'x'``) and the pure re-orderings ``transpose``, ``Reshape``
  and ``Select`` of such arrays. A chumpy object that carries no array (an unevaluated operation) is
  refused with a message saying how to convert the file.

and refuses every other global with :class:`UnsafePickleError`, naming the file and the class.

Python's ``pickle`` documents this pattern (override ``Unpickler.find_class``); it is hand-written here
because no maintained library reads chumpy pickles without importing chumpy.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["UnsafePickleError", "safe_load_pickle", "safe_loads_pickle"]


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle names a global outside the allow-list, or holds a chumpy object without an array."""


# -- allowed callables ------------------------------------------------------------------------------
def _codecs_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Protocol 0-2 pickles written by Python 3 store ``bytes`` as ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(obj, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"_codecs.encode called with {type(obj).__name__}, {encoding!r}; only "
                                "latin1 text-to-bytes is allowed")
    return obj.encode("latin1", errors)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray, numeric

    out: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        out[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return out


_BUILTINS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "object"): object,
    ("_codecs", "encode"): _codecs_encode,
}

_SPARSE_FORMATS = ("csc", "csr", "coo")


# -- inert stand-ins ----------------------------------------------------------------------------------
class _Stub:
    """An inert object that only records the pickled state of a chumpy or scipy.sparse object."""

    _qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        obj = object.__new__(cls)
        obj.__dict__["_state"] = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged: dict = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        if not isinstance(state, dict):
            kind = type(state).__name__
            raise UnsafePickleError(f"{self._qualname}: unexpected pickled state of type {kind}")
        self.__dict__["_state"] = state


class _ChumpyStub(_Stub):
    pass


class _SparseStub(_Stub):
    _format = "csc"


def _make_stub(base: type[_Stub], module: str, name: str, **attrs: Any) -> type[_Stub]:
    return type(f"{name}", (base,), {"_qualname": f"{module}.{name}", **attrs})


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocols 0 and 1) restricted to the stand-in classes."""
    if isinstance(cls, type) and issubclass(cls, _Stub) and base is object:
        return cls.__new__(cls)
    raise UnsafePickleError(f"copyreg._reconstructor called for {cls!r} (base {base!r}); only chumpy and "
                            "scipy.sparse objects may be rebuilt this way")


# -- the unpickler -----------------------------------------------------------------------------------
class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source
        self._allowed = {**_numpy_globals(), **_BUILTINS}
        self._stubs: dict[tuple[str, str], type[_Stub]] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (the official SMPL files were written by Python 2), as pickle itself maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if key == ("copyreg", "_reconstructor"):
            return _safe_reconstructor
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stub(_ChumpyStub, module, name)
        sparse_format = _sparse_format(module, name)
        if sparse_format is not None:
            return self._stub(_SparseStub, module, name, _format=sparse_format)
        raise UnsafePickleError(
            f"{self._source}: refused to load '{module}.{name}'. Body-model pickles may only hold numpy "
            "arrays, scipy.sparse matrices, plain containers and chumpy arrays; if this file is a real "
            "SMPL model, re-download it, otherwise convert it to .npz with numpy arrays only"
        )

    def _stub(self, base: type[_Stub], module: str, name: str, **attrs: Any) -> type[_Stub]:
        if (module, name) not in self._stubs:
            self._stubs[(module, name)] = _make_stub(base, module, name, **attrs)
        return self._stubs[(module, name)]


def _sparse_format(module: str, name: str) -> str | None:
    """'csc' for ``scipy.sparse[.csc|._csc].csc_matrix`` (and csr/coo, matrices and arrays), else None."""
    if not (module == "scipy.sparse" or module.startswith("scipy.sparse.")):
        return None
    for fmt in _SPARSE_FORMATS:
        if name in (f"{fmt}_matrix", f"{fmt}_array"):
            return fmt
    return None


# -- turning stand-ins into arrays ----------------------------------------------------------------------
def _convert(obj: Any, source: str, memo: dict[int, Any]) -> Any:
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _ChumpyStub):
        out: Any = _chumpy_to_numpy(obj, source, memo)
    elif isinstance(obj, _SparseStub):
        out = _sparse_from_state(obj, source, memo)
    elif isinstance(obj, dict):
        out = {k: _convert(v, source, memo) for k, v in obj.items()}
    elif isinstance(obj, list):
        out = [_convert(v, source, memo) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_convert(v, source, memo) for v in obj)
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        out = np.array([_convert(v, source, memo) for v in obj.ravel()], dtype=object).reshape(obj.shape)
    else:
        out = obj
    memo[key] = out
    return out


def _chumpy_to_numpy(stub: _ChumpyStub, source: str, memo: dict[int, Any]) -> np.ndarray:
    state = stub._state
    cls = type(stub).__name__

    def term(name: str) -> Any:
        if name not in state:
            raise UnsafePickleError(f"{source}: chumpy object {stub._qualname} has no '{name}' in its state")
        return _convert(state[name], source, memo)

    handlers: dict[str, Callable[[], np.ndarray]] = {
        "transpose": lambda: np.transpose(np.asarray(term("a")), axes=state.get("axes")),
        "Reshape": lambda: np.asarray(term("a")).reshape(term("newshape")),
        "Select": lambda: _chumpy_select(np.asarray(term("a")), term("idxs"), state.get("preferred_shape")),
    }
    if cls in handlers and "a" in state:
        return np.ascontiguousarray(handlers[cls]())
    if "x" in state and "a" not in state:
        value = _convert(state["x"], source, memo)
        if isinstance(value, np.ndarray | float | int) or np.isscalar(value):
            return np.asarray(value, dtype=np.float64)
    raise UnsafePickleError(
        f"{source}: chumpy object {stub._qualname} carries no stored array (it is an unevaluated chumpy "
        "expression); evaluate it once where chumpy is installed (e.g. smplx's tools/clean_ch.py) and save "
        "the arrays as .npz or a cleaned .pkl"
    )


def _chumpy_select(a: np.ndarray, idxs: Any, preferred_shape: Any) -> np.ndarray:
    out = a.ravel()[np.asarray(idxs)]
    return out.reshape(preferred_shape) if preferred_shape is not None else out


def _sparse_from_state(stub: _SparseStub, source: str, memo: dict[int, Any]) -> sp.spmatrix:
    """Rebuild a sparse matrix from its pickled ``__dict__`` through the public constructor.

    Old scipy pickles store the shape as ``shape`` or ``_shape``; the arrays are ``data``, ``indices``,
    ``indptr`` (csc/csr) or ``data``, ``row``/``col`` (coo, older ``coords``).
    """
    state = {k: _convert(v, source, memo) for k, v in stub._state.items()}
    shape = state.get("_shape", state.get("shape"))
    try:
        if stub._format == "coo":
            if "coords" in state:
                row, col = state["coords"]
            else:
                row, col = state["row"], state["col"]
            return sp.coo_matrix((state["data"], (row, col)), shape=shape)
        ctor = sp.csc_matrix if stub._format == "csc" else sp.csr_matrix
        return ctor((state["data"], state["indices"], state["indptr"]), shape=shape)
    except (KeyError, ValueError, TypeError) as err:
        raise UnsafePickleError(f"{source}: could not rebuild {stub._qualname} from its pickled state "
                                f"(keys {sorted(state)}): {err}") from err


# -- public API ----------------------------------------------------------------------------------------
def safe_loads_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """:func:`safe_load_pickle` for an in-memory pickle; ``source`` names it in error messages."""
    return _load(io.BytesIO(data), source)


def safe_load_pickle(path: str | Path) -> Any:
    """Load a body-model pickle without executing code and without chumpy.

    Args:
        path: a ``.pkl`` file (Python 2 or 3 pickle, any protocol).

    Returns:
        The unpickled object, with chumpy arrays turned into float64 ``np.ndarray`` and sparse matrices
        rebuilt as current ``scipy.sparse`` matrices.

    Raises:
        UnsafePickleError: the file names a class or function outside the allow-list (the message names
            the file and the refused ``module.name``), or holds a chumpy object without an array.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    with path.open("rb") as f:
        return _load(f, str(path))


def _load(file: Any, source: str) -> Any:
    try:
        raw = _RestrictedUnpickler(file, source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise pickle.UnpicklingError(f"{source}: not a readable pickle ({reason})") from err
    return _convert(raw, source, {})

