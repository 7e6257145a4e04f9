"""The text that names a custom model's factory, and the custom workload section."""

from __future__ import annotations

from pathlib import Path

import pytest

from minicluster.core import config, factory_spec
from minicluster.core.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "target", "function", "is_file"),
    [
        ("pkg.models:build", "pkg.models", "build", False),
        ("models:make", "models", "make", False),
        ("examples/custom_model.py:build", "examples/custom_model.py", "build", True),
        ("model.py:build", "model.py", "build", True),
        ("/abs/dir/m.py:build", "/abs/dir/m.py", "build", True),
    ],
)
def test_parses_both_forms(text: str, target: str, function: str, is_file: bool) -> None:
    spec = factory_spec.parse(text)
    assert (spec.target, spec.function, spec.is_file) == (target, function, is_file)
    assert str(spec) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is required"),
        (None, "is required"),
        ("pkg.models", "no ':function'"),
        ("pkg.models:", "no ':function'"),
        (":build", "no ':function'"),
        ("pkg.models:not-a-name", "not a Python function name"),
        ("pkg-x.models:build", "neither a module name nor a .py file"),
    ],
)
def test_refuses_what_names_no_function(text: object, says: str) -> None:
    with pytest.raises(ConfigError, match="workload.factory") as e:
        factory_spec.parse(text)
    assert says in str(e.value)


def test_a_relative_file_is_made_absolute_and_a_module_is_kept(tmp_path: Path) -> None:
    rel = factory_spec.parse("m.py:build").absolute(tmp_path)
    assert rel.target == str((tmp_path / "m.py").resolve()) and rel.is_file
    assert factory_spec.parse("pkg.m:build").absolute(tmp_path).target == "pkg.m"


def test_custom_workload_section_loads() -> None:
    cfg = config.from_dict(
        {
            "workload": {
                "name": "custom",
                "factory": "examples/custom_model.py:build",
                "per_rank_batch": 8,
                "options": {"width": 64},
            }
        }
    )
    assert isinstance(cfg.workload, config.CustomConfig)
    assert cfg.workload.options == {"width": 64}
    assert cfg.to_dict()["workload"]["factory"] == "examples/custom_model.py:build"


@pytest.mark.parametrize(
    ("workload", "says"),
    [
        ({"name": "custom"}, "workload.factory is required"),
        ({"name": "custom", "factory": "m.py:build", "options": [1]}, "workload.options"),
        ({"name": "custom", "factory": "m.py:build", "per_rank_batch": 0}, "per_rank_batch"),
        ({"name": "custom", "factory": "m.py:build", "width": 3}, "unknown key workload.width"),
    ],
)
def test_custom_workload_section_refuses_bad_fields(workload: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        config.from_dict({"workload": workload}, source="c.yaml")
