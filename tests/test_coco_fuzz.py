"""Malformed COCO-format annotation files give person records or a clean one-line error naming the file.

"Clean": a ValueError / KeyError / TypeError / FileNotFoundError (or a subclass) whose message names the
annotation file and fits on one line. Anything else (AssertionError from pycocotools, an IndexError, a
numpy message without the file, records with non-finite boxes, annotations neither loaded nor counted as
skipped) fails the test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.data.schema import NUM_KEYPOINTS

CLEAN_ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError)
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# Values that do not belong where they land: strings for numbers, nested lists, None, NaN, negative sizes...
JUNK = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6), st.just("12"), st.just(""),
    st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.just(float("nan")), st.just(-5.0), st.just(0),
    st.lists(st.integers(-3, 3), max_size=5), st.lists(st.lists(st.floats(-1, 1), max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def _keypoints(draw: st.DrawFn) -> list[float]:
    values = []
    for _ in range(NUM_KEYPOINTS):
        v = draw(st.sampled_from([0, 1, 2]))
        xy = [draw(st.floats(0, 200)), draw(st.floats(0, 200))] if v else [0, 0]
        values += [*xy, v]
    return values


@st.composite
def coco_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed COCO keypoint dict: 1-3 images, 0-5 people (a few crowd regions and keypoint-less)."""
    n_images = draw(st.integers(1, 3))
    images = [{"id": i + 1, "file_name": f"{i + 1:06d}.jpg", "width": 200, "height": 200} for i in range(n_images)]
    annotations = []
    for a in range(draw(st.integers(0, 5))):
        box = [draw(st.floats(0, 100)), draw(st.floats(0, 100)), draw(st.floats(2, 100)), draw(st.floats(2, 100))]
        ann = {"id": 100 + a, "image_id": draw(st.integers(1, n_images)), "category_id": 1, "bbox": box,
               "area": box[2] * box[3], "iscrowd": draw(st.sampled_from([0, 0, 0, 1]))}
        if draw(st.booleans()) or a == 0:
            ann["keypoints"] = draw(_keypoints())
            ann["num_keypoints"] = sum(1 for v in ann["keypoints"][2::3] if v > 0)
        annotations.append(ann)
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def _containers(tree: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every dict/list inside ``tree`` (the root included)."""
    found = [path]
    children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, child in children:
        if isinstance(child, (dict, list)):
            found += _containers(child, (*path, key))
    return found


def _at(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A COCO dict with 1-4 random edits: a key or item removed, a value replaced by junk, a keypoint list cut
    or lengthened, a list replaced by a dict; or a top level that is not an object."""
    data = draw(coco_dicts())
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(JUNK, st.lists(st.just(data), max_size=2)))
    for _ in range(draw(st.integers(1, 4))):
        container = _at(data, draw(st.sampled_from(_containers(data))))
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        edit = draw(st.sampled_from(["delete", "junk", "junk", "resize", "wrap"]))
        if edit == "delete":
            del container[key]
        elif edit == "junk":
            container[key] = draw(JUNK)
        elif edit == "resize" and isinstance(container[key], list):
            cut = draw(st.integers(0, len(container[key]) + 2))
            container[key] = (container[key] + [1.0, 1.0])[:cut]
        elif edit == "wrap":
            container[key] = {"value": container[key]} if draw(st.booleans()) else [container[key]]
    return data


def _assert_records_or_clean_error(ann_file: Path, write: Callable[[Path], None]) -> None:
    write(ann_file)
    try:
        records, skipped = load_coco_keypoint_records(ann_file, ann_file.parent / "images", "fuzz", min_keypoints=1)
    except CLEAN_ERRORS as error:
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        assert str(ann_file) in message, f"{type(error).__name__} without the file: {message}"
        assert "\n" not in message, f"not one line: {message!r}"
        event(f"{type(error).__name__}: {message[len(str(ann_file)) + 2:].split(':')[0][:30]}")
        return
    event(f"loaded ({'some' if records else 'no'} records)")
    data = json.loads(ann_file.read_text())
    assert len(records) + sum(skipped.values()) == len(data["annotations"]), "annotations lost without a count"
    assert all(isinstance(reason, str) and count > 0 for reason, count in skipped.items())
    file_names = {image["id"]: image["file_name"] for image in data["images"]}
    for record in records:
        assert record.box.shape == (4,) and np.isfinite(record.box).all() and (record.box[2:] > 1).all()
        assert record.keypoints.shape == (NUM_KEYPOINTS, 3) and np.isfinite(record.keypoints).all()
        assert int((record.keypoints[:, 2] > 0).sum()) >= 1
        assert np.isfinite(record.center).all() and np.isfinite(record.image_centers).all()
        assert record.image_path == ann_file.parent / "images" / file_names[record.image_id]


@FUZZ
@given(data=mutated())
def test_malformed_coco_dicts_give_records_or_a_clean_error(data, tmp_path):
    _assert_records_or_clean_error(tmp_path / "annotations.json", lambda path: path.write_text(json.dumps(data)))


@FUZZ
@given(text=st.one_of(st.text(max_size=40), st.builds(lambda d, cut: json.dumps(d)[:cut], coco_dicts(),
                                                      st.integers(0, 400))))
def test_text_that_is_not_a_coco_file_gives_a_clean_error(text, tmp_path):
    _assert_records_or_clean_error(tmp_path / "annotations.json", lambda path: path.write_text(text))


@FUZZ
@given(blob=st.binary(max_size=40))
def test_bytes_that_are_not_text_give_a_clean_error(blob, tmp_path):
    _assert_records_or_clean_error(tmp_path / "annotations.json", lambda path: path.write_bytes(blob))


def test_a_well_formed_file_loads_every_person_or_counts_them(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
            "categories": [{"id": 1, "name": "person"}],
            "annotations": [
                {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 40], "iscrowd": 0,
                 "keypoints": [5, 5, 2] * NUM_KEYPOINTS},
                {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 40], "iscrowd": 1},
                {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0, 0, 0.5, 40], "iscrowd": 0},
                {"id": 13, "image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 40], "iscrowd": 0,
                 "keypoints": [0, 0, 0] * NUM_KEYPOINTS}]}
    (tmp_path / "a.json").write_text(json.dumps(data))
    records, skipped = load_coco_keypoint_records(tmp_path / "a.json", tmp_path, "fuzz", min_keypoints=1)
    assert [r.ann_id for r in records] == [10]
    assert dict(skipped) == {"crowd_region": 1, "invalid_box": 1, "too_few_keypoints": 1}


def _one_person(**ann: Any) -> dict[str, Any]:
    person = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 40], "iscrowd": 0,
              "keypoints": [5, 5, 2] * NUM_KEYPOINTS}
    person.update(ann)
    return {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [person],
            "categories": [{"id": 1, "name": "person"}]}


@pytest.mark.parametrize(("content", "expected"), [
    ("{\"images\": [", "is not valid JSON"),
    ("[1, 2]", "top level is a list, expected a JSON object with 'images' and 'annotations'"),
    (json.dumps({"annotations": []}), "no 'images' list"),
    (json.dumps({"images": {"id": 1}, "annotations": []}), "'images' must be a list of objects, got a dict"),
    (json.dumps({"images": [3], "annotations": []}), "images[0] must be an object"),
    (json.dumps({"images": [{"file_name": "a.jpg"}], "annotations": []}), "images[0] has no 'id'"),
    (json.dumps({"images": [{"id": "1", "file_name": "a.jpg"}], "annotations": []}),
     "images[0]: 'id' must be an integer, got '1'"),
    (json.dumps({"images": [{"id": 1}], "annotations": []}), "images[0] (id 1) has no 'file_name'"),
    (json.dumps({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], "annotations": []}),
     "image id 1 appears twice (images[0] and images[1])"),
    (json.dumps(_one_person(id=None)), "annotations[0]: 'id' must be an integer, got None"),
    (json.dumps({**_one_person(), "annotations": [_one_person()["annotations"][0]] * 2}),
     "annotation id 7 appears twice (annotations[0] and annotations[1])"),
    (json.dumps(_one_person(image_id=[1])), "annotations[0] (id 7): 'image_id' must be an integer, got [1]"),
    (json.dumps(_one_person(category_id=None)), "annotations[0] (id 7): 'category_id' must be an integer"),
    (json.dumps(_one_person(iscrowd="0")), "annotations[0] (id 7): 'iscrowd' must be 0 or 1, got '0'"),
    (json.dumps(_one_person(keypoints=[1, 2, 2])), "annotations[0] (id 7): 'keypoints' has 3 values, expected 51"),
    (json.dumps(_one_person(keypoints=["5", 5, 2] * NUM_KEYPOINTS)),
     "annotations[0] (id 7): 'keypoints' must be a list of numbers, got '5' at index 0"),
    (json.dumps(_one_person(keypoints=None)), "annotations[0] (id 7): 'keypoints' must be a list of numbers"),
])
def test_each_malformed_field_gets_a_one_line_error_naming_the_file_the_key_and_the_fix(content, expected, tmp_path):
    ann_file = tmp_path / "bad.json"
    ann_file.write_text(content)
    with pytest.raises(ValueError) as error:
        load_coco_keypoint_records(ann_file, tmp_path, "fuzz")
    message = str(error.value)
    assert message.startswith(f"{ann_file}: ") and expected in message, message
    assert "\n" not in message and "; " in message, f"one line with the fix after '; ': {message!r}"


def test_people_with_non_finite_values_are_skipped_and_counted(tmp_path):
    data = _one_person()
    good = data["annotations"][0]
    nan_keypoints = dict(good, id=8, keypoints=[math.nan, 5, 2] + [5, 5, 2] * (NUM_KEYPOINTS - 1))
    nan_hidden = dict(good, id=9, keypoints=[math.inf, 5, 0] + [5, 5, 2] * (NUM_KEYPOINTS - 1))
    nan_box = dict(good, id=10, bbox=[0, math.nan, 20, 40])
    string_box = dict(good, id=11, bbox=["0", "0", "20", "40"])
    data["annotations"] += [nan_keypoints, nan_hidden, nan_box, string_box]
    (tmp_path / "a.json").write_text(json.dumps(data))
    records, skipped = load_coco_keypoint_records(tmp_path / "a.json", tmp_path, "fuzz")
    assert [r.ann_id for r in records] == [7]
    assert dict(skipped) == {"invalid_keypoints": 2, "invalid_box": 2}
    assert np.isfinite(records[0].image_centers).all() and records[0].image_centers.shape == (1, 2)


def test_annotations_of_images_not_in_the_file_are_counted(tmp_path):
    data = _one_person()
    data["annotations"].append(dict(data["annotations"][0], id=8, image_id=99))
    (tmp_path / "a.json").write_text(json.dumps(data))
    records, skipped = load_coco_keypoint_records(tmp_path / "a.json", tmp_path, "fuzz")
    assert [r.ann_id for r in records] == [7] and dict(skipped) == {"unknown_image": 1}


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"annotation file not found: {tmp_path / 'nope.json'}"):
        load_coco_keypoint_records(tmp_path / "nope.json", tmp_path, "fuzz")
