"""The restricted unpickler: chumpy-style SMPL pickles load without chumpy; code-running pickles do not."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from ochmr_lit.safe_pickle import UnsafePickleError, safe_load_pickle, safe_loads_pickle


# -- a stand-in for chumpy, present only while a test writes its pickle ---------------------------------
class _Ch:
    """Pickles like ``chumpy.ch.Ch``: no ``__reduce__``, the state is the ``__dict__`` minus caches."""

    def __init__(self, x: np.ndarray):
        self.x = np.asarray(x, dtype=np.float64)
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False
        self._parents = {}
        self._cache = {"r": None}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_parents"], state["_cache"]
        return state


class _Op:
    """A chumpy expression node (e.g. ``chumpy.reordering.transpose``): terms in the state, no array."""

    def __init__(self, **terms):
        self.__dict__.update(terms)
        self._dirty_vars = set()


@contextmanager
def fake_chumpy() -> Iterator[dict[str, type]]:
    """Register modules ``chumpy``, ``chumpy.ch``, ``chumpy.reordering``, ``chumpy.ch_ops`` temporarily."""
    names = ("chumpy", "chumpy.ch", "chumpy.reordering", "chumpy.ch_ops")
    saved = {name: sys.modules.get(name) for name in names}
    classes = {
        "Ch": type("Ch", (_Ch,), {"__module__": "chumpy.ch"}),
        "transpose": type("transpose", (_Op,), {"__module__": "chumpy.reordering"}),
        "Select": type("Select", (_Op,), {"__module__": "chumpy.reordering"}),
        "add": type("add", (_Op,), {"__module__": "chumpy.ch_ops"}),
    }
    root = types.ModuleType("chumpy")
    for module_name in ("chumpy.ch", "chumpy.reordering", "chumpy.ch_ops"):
        module = types.ModuleType(module_name)
        for name, cls in classes.items():
            if cls.__module__ == module_name:
                setattr(module, name, cls)
        setattr(root, module_name.split(".")[1], module)
        sys.modules[module_name] = module
    sys.modules["chumpy"] = root
    try:
        yield classes
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _smpl_like_arrays() -> dict:
    rng = np.random.default_rng(0)
    j_regressor = sp.random(24, 50, density=0.2, format="csc", random_state=1)
    return {
        "v_template": rng.normal(size=(50, 3)),
        "shapedirs": rng.normal(size=(50, 3, 10)),
        "posedirs": rng.normal(size=(50, 3, 207)).astype(np.float32),
        "J_regressor": j_regressor,
        "kintree_table": np.array([[4294967295, 0, 0], [0, 1, 2]], dtype=np.uint32),
        "f": rng.integers(0, 50, size=(20, 3)).astype(np.uint32),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
        "J": rng.normal(size=(24, 3)),
    }


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_chumpy_style_pickle_loads_without_chumpy(tmp_path: Path, protocol: int) -> None:
    arrays = _smpl_like_arrays()
    with fake_chumpy() as ch:
        data = dict(arrays)
        data["shapedirs"] = ch["Ch"](arrays["shapedirs"])  # as in the official files
        data["v_template"] = ch["Ch"](arrays["v_template"])
        data["J_t"] = ch["transpose"](a=ch["Ch"](arrays["J"]), axes=None)
        data["J_sel"] = ch["Select"](a=ch["Ch"](arrays["J"]), idxs=np.array([5, 1, 0]), preferred_shape=(3,))
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules

    loaded = safe_load_pickle(path)

    assert "chumpy" not in sys.modules, "loading must not import chumpy"
    for key in ("v_template", "shapedirs", "posedirs", "kintree_table", "f", "J"):
        assert isinstance(loaded[key], np.ndarray)
        np.testing.assert_array_equal(loaded[key], arrays[key])
    assert loaded["posedirs"].dtype == np.float32 and loaded["kintree_table"].dtype == np.uint32
    assert sp.issparse(loaded["J_regressor"]) and loaded["J_regressor"].shape == (24, 50)
    np.testing.assert_array_equal(loaded["J_regressor"].toarray(), arrays["J_regressor"].toarray())
    np.testing.assert_array_equal(loaded["J_t"], arrays["J"].T)
    np.testing.assert_array_equal(loaded["J_sel"], arrays["J"].ravel()[[5, 1, 0]])
    assert loaded["bs_type"] == "lrotmin" and loaded["bs_style"] == "lbs"


def test_python2_and_numpy1_names_are_understood() -> None:
    """The official files were written by Python 2 with numpy 1.x: copy_reg, __builtin__, numpy.core."""
    arrays = _smpl_like_arrays()
    with fake_chumpy() as ch:
        blob = pickle.dumps({"shapedirs": ch["Ch"](arrays["shapedirs"]), "f": arrays["f"]}, protocol=0)
    old = (blob.replace(b"ccopyreg\n", b"ccopy_reg\n").replace(b"cbuiltins\n", b"c__builtin__\n")
           .replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    assert b"copy_reg" in old and b"numpy.core.multiarray" in old and b"__builtin__" in old
    loaded = safe_loads_pickle(old, "old.pkl")
    np.testing.assert_array_equal(loaded["shapedirs"], arrays["shapedirs"])
    np.testing.assert_array_equal(loaded["f"], arrays["f"])


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_calling_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros(3), "x": _RunsShell(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        safe_load_pickle(path)
    message = str(err.value)
    assert str(path) in message and f"{os.system.__module__}.system" in message
    assert not marker.exists(), "the refused callable must not have run"


@pytest.mark.parametrize("target", [eval, getattr, __import__])
def test_other_globals_are_refused(target) -> None:
    class Reduces:
        def __reduce__(self):
            return (target, ("1",))

    with pytest.raises(UnsafePickleError, match=f"builtins.{target.__name__}"):
        safe_loads_pickle(pickle.dumps(Reduces(), protocol=2), "x.pkl")


def test_chumpy_expression_without_array_is_refused_with_advice() -> None:
    with fake_chumpy() as ch:
        blob = pickle.dumps({"J": ch["add"](a=ch["Ch"](np.ones(3)), b=ch["Ch"](np.ones(3)))}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"chumpy\.ch_ops\.add.*no stored array"):
        safe_loads_pickle(blob, "expr.pkl")


def test_codecs_encode_only_turns_text_into_latin1_bytes() -> None:
    good = pickle.dumps(b"\x00\xffabc", protocol=2)  # Python 3 writes bytes as _codecs.encode(..., 'latin1')
    assert b"_codecs" in good and safe_loads_pickle(good) == b"\x00\xffabc"
    bad = good.replace(b"latin1", b"rot_13")
    with pytest.raises(UnsafePickleError, match="latin1"):
        safe_loads_pickle(bad)


class _TouchesMarker:
    """Unpickles as ``Path.touch(marker)``: creates a file, no shell needed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize(("payload", "protocol", "refused"), [
    (_RunsShell, 2, f"{os.system.__module__}.system"),
    (_TouchesMarker, 4, "pathlib.Path.touch"),
], ids=["os.system", "Path.touch"])
def test_body_model_folder_with_a_code_running_pickle_is_refused(tmp_path: Path, payload, protocol, refused) -> None:
    """A paths.body_model_dir whose SMPL_NEUTRAL.pkl would run code: BodyModel refuses it, names it, runs nothing."""
    from ochmr_lit.body import BodyModel, ensure_synthetic_body_model
    from ochmr_lit.body.synthetic import MEAN_PARAMS_FILE, MODEL_FILES, REGRESSOR_FILES

    marker = tmp_path / "ran"
    folder = tmp_path / "body_model"
    folder.mkdir()
    synthetic = ensure_synthetic_body_model()
    for name in (MODEL_FILES["male"], MODEL_FILES["female"], *REGRESSOR_FILES.values(), MEAN_PARAMS_FILE):
        (folder / name).write_bytes((synthetic / name).read_bytes())
    # a real model's arrays, with the payload riding along as one more entry
    model = safe_load_pickle(synthetic / MODEL_FILES["neutral"])
    blob = pickle.dumps({**model, "bs_style": payload(marker)}, protocol=protocol)
    pickle.loads(blob)  # the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    evil = folder / MODEL_FILES["neutral"]
    evil.write_bytes(blob)

    with pytest.raises(UnsafePickleError) as err:
        BodyModel(folder)

    message = str(err.value)
    assert message.startswith(f"{evil}: refused to load '{refused}'"), message
    assert "convert it to .npz with numpy arrays only" in message
    assert not marker.exists(), "the refused callable must not have run"
