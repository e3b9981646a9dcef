"""The FE template YAML: defaults round-trip, a tampered file is one clear error."""

from __future__ import annotations

import pytest

from hipseg.core.errors import InputError
from hipseg.fe.template import FeTemplate, load_template, save_template


def test_template_round_trips(tmp_path):
    save_template(FeTemplate(), tmp_path / "fe.yaml")
    assert load_template(tmp_path / "fe.yaml") == FeTemplate()


@pytest.mark.parametrize(("old", "new", "message"), [
    ("0.495", "0.7", r"poisson_ratio must lie in \(-1, 0.5\), got 0.7"),
    ("neo-Hookean", "rubber", "material model 'rubber' is not one of"),
    ("femur_force_n", "femur_force", "unknown config key.*load.femur_force"),
    ("17000.0", "stiff", "bone.youngs_modulus_mpa: expected a number"),
    ("fixed_depth_mm: 10.0", "fixed_depth_mm: -1", "fixed_depth_mm must be a positive number"),
])
def test_a_tampered_template_is_a_one_line_error_naming_the_file(tmp_path, old, new, message):
    path = tmp_path / "fe.yaml"
    save_template(FeTemplate(), path)
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(InputError, match=message) as error:
        load_template(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
