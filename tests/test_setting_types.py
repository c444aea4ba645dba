"""The value predicates every settings check asks: a bool is no number, a word is neither a number nor a boolean."""

import pytest

from ochmr_lit.errors import ConfigError
from ochmr_lit.setting_types import boolean_setting, is_number, is_whole


@pytest.mark.parametrize(("value", "minimum", "expected"), [
    (0, 0, True), (3, 1, True), (0, 1, False), (-1, 0, False), (True, 0, False), (False, 0, False), (2.0, 0, False),
    ("2", 0, False), (None, 0, False)])
def test_is_whole(value, minimum, expected):
    assert is_whole(value, minimum) is expected


@pytest.mark.parametrize(("value", "expected"), [
    (0, True), (-2.5, True), (1e-9, True), (True, False), ("0.1", False), (None, False), ([1], False)])
def test_is_number(value, expected):
    assert is_number(value) is expected


def test_boolean_setting_takes_only_booleans_and_null_where_it_has_a_meaning():
    assert boolean_setting(True, "flip_test", "average") is True
    assert boolean_setting(None, "flip_test", "average", null_means="the checkpoint's") is None
    with pytest.raises(ConfigError) as error:
        boolean_setting("no", "save_figures", "write the figures")
    assert str(error.value) == "save_figures='no': use true (write the figures) or false"
    with pytest.raises(ConfigError) as error:
        boolean_setting(None, "side_view", "add side views")
    assert str(error.value) == "side_view=None: use true (add side views) or false"
    with pytest.raises(ConfigError) as error:
        boolean_setting(1, "flip_test", "average", null_means="the checkpoint's")
    assert str(error.value) == "flip_test=1: use true (average), false, or null (the checkpoint's)"
