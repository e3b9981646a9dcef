"""The HTML QC report: images inlined and written, legend, fallbacks, metrics, orientation."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_rgb
from matplotlib.image import imread

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.io import write_image, write_labels
from hipseg.phantom import make_procedural_case
from hipseg.phantom.procedural import flip_axes
from hipseg.qc.figures import PLANES, class_colours
from hipseg.qc.report import write_case_report

KINDS = ("labels", "collisions")


@pytest.fixture(scope="module")
def phantom():
    return make_procedural_case(np.random.default_rng(0))


def _write(folder, phantom, labels=None, *, ct=None, affine=None):
    """Write a case's image and labels; return both paths."""
    ct = phantom.image.data if ct is None else ct
    labels = phantom.labels.data if labels is None else labels
    affine = phantom.image.affine if affine is None else affine
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / "case_000.nii.gz", ct, affine)
    write_labels(folder / "case_000_labels.nii.gz", labels, Volume(labels, affine))
    return folder / "case_000.nii.gz", folder / "case_000_labels.nii.gz"


def test_report_inlines_and_writes_every_view(tmp_path, phantom):
    image, labels = _write(tmp_path / "in", phantom)
    uncertainty = tmp_path / "in" / "case_000_uncertainty.nii.gz"
    write_image(uncertainty, (phantom.labels.data > 0) * 0.25, phantom.image.affine)
    out = tmp_path / "out"
    path = write_case_report(image, labels, out, DEFAULT_LABELS, uncertainty_path=uncertainty)

    assert path == out / "case_000_report.html"
    page = path.read_text()
    inlined = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    names = [*(f"{k}_{p}" for k in (*KINDS, "disagreement") for p in PLANES), "meshes"]
    assert len(inlined) == len(names)
    for name, data in zip(names, inlined, strict=True):
        file = out / f"case_000_{name}.png"
        assert file.read_bytes() == base64.b64decode(data)
        pixels = imread(io.BytesIO(file.read_bytes()))
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    for class_name in DEFAULT_LABELS.names[1:]:
        assert class_name in page
    assert "Mesh QC" in page and "radiological" in page
    assert not list(out.glob(".*.tmp*"))  # atomic writes leave no temporary files


def test_missing_left_femur_gives_a_note(tmp_path, phantom):
    labels = phantom.labels.data.copy()
    labels[labels == DEFAULT_LABELS.id_of("femur_left")] = 0
    image, label_path = _write(tmp_path / "in", phantom, labels)
    page = write_case_report(image, label_path, tmp_path / "out", DEFAULT_LABELS).read_text()
    assert "femur_left missing" in page
    assert page.count("data:image/png;base64,") == 3 * len(KINDS) + 1


def test_missing_whole_side_and_no_meshes(tmp_path, phantom):
    labels = phantom.labels.data.copy()
    labels[np.isin(labels, [DEFAULT_LABELS.id_of("femur_right"), DEFAULT_LABELS.id_of("hip_right")])] = 0
    image, label_path = _write(tmp_path / "in", phantom, labels)
    page = write_case_report(image, label_path, tmp_path / "out", DEFAULT_LABELS,
                             meshes={}).read_text()
    assert "femur_right and hip_right missing; no slices" in page
    assert "Mesh QC" not in page


def test_metrics_table_with_reference(tmp_path, phantom):
    image, labels = _write(tmp_path / "in", phantom)
    page = write_case_report(image, labels, tmp_path / "out", DEFAULT_LABELS,
                             reference_labels_path=labels, meshes={}).read_text()
    assert "Metrics against the reference labels" in page
    for class_name in (*DEFAULT_LABELS.names[1:], "mean"):
        assert re.search(rf"<td>{class_name}</td><td>1\.0000</td>", page), class_name


def test_slices_do_not_depend_on_array_orientation(tmp_path, phantom):
    """The same anatomy stored with other array axes flipped renders identically."""
    first = write_case_report(*_write(tmp_path / "a", phantom), tmp_path / "a_out",
                              DEFAULT_LABELS, meshes={})
    (ct, labels), affine = flip_axes((phantom.image.data, phantom.labels.data),
                                     phantom.image.affine, (0, 2))
    second = write_case_report(*_write(tmp_path / "b", phantom, labels, ct=ct, affine=affine),
                               tmp_path / "b_out", DEFAULT_LABELS, meshes={})
    for plane in PLANES:
        a = imread(first.parent / f"case_000_labels_{plane}.png")
        b = imread(second.parent / f"case_000_labels_{plane}.png")
        assert a.shape == b.shape
        assert np.mean(np.abs(a - b) > 1e-6) < 1e-3, plane


def test_patient_right_is_on_the_viewer_left(tmp_path, phantom):
    path = write_case_report(*_write(tmp_path / "in", phantom), tmp_path / "out",
                             DEFAULT_LABELS, meshes={})
    pixels = imread(path.parent / "case_000_labels_coronal.png")[..., :3]
    colours = class_colours(DEFAULT_LABELS)

    def columns_of(class_name):
        # Overlay = 0.45 colour + 0.55 grey: removing the colour's share leaves a grey pixel.
        residual = pixels - 0.45 * np.array(to_rgb(colours[DEFAULT_LABELS.id_of(class_name)]))
        grey = (np.ptp(residual, axis=-1) < 0.03) & (residual.min(axis=-1) > -0.02)
        return np.flatnonzero(grey.sum(axis=0) > 2)

    # In each panel (one per side, right side's panel first) femur_right lies left of femur_left.
    half = pixels.shape[1] // 2
    for lo, hi in ((0, half), (half, pixels.shape[1])):
        right = [c for c in columns_of("femur_right") if lo <= c < hi]
        left = [c for c in columns_of("femur_left") if lo <= c < hi]
        assert right and left
        assert np.median(right) < np.median(left)


def test_report_shows_the_fe_model_around_each_hip_joint(tmp_path, phantom, capsys):
    from hipseg.fe.files import fe_file
    from hipseg.fe.model import FeSettings

    image, labels = _write(tmp_path / "in", phantom)
    summary = fe_file(labels, tmp_path / "fe", DEFAULT_LABELS, formats=("vtu",),
                      settings=FeSettings(size_mm=2.0, enforce_gap=True))
    bodies = tmp_path / "fe" / f"{summary['case']}_fe_bodies.nii.gz"
    out = tmp_path / "out"
    page = write_case_report(image, labels, out, DEFAULT_LABELS, fe_bodies_path=bodies,
                             fe_summary=summary).read_text()
    assert (out / "case_000_fe_coronal.png").is_file()
    assert f"FE model: {summary['elements']} tetrahedra on a 2.0 mm grid" in page
    with pytest.raises(ValueError, match="both its body map and its summary"):
        write_case_report(image, labels, out, DEFAULT_LABELS, fe_bodies_path=bodies)
    # the command line reads the body map beside the summary
    from hipseg.cli import main
    fe_json = tmp_path / "fe" / f"{summary['case']}_fe.json"
    assert main(["report", str(image), str(labels), "--out", str(tmp_path / "cli"),
                 "--fe", str(fe_json), "--no-progress"]) == 0
    assert (tmp_path / "cli" / "case_000_fe_coronal.png").is_file()
    bodies.unlink()
    assert main(["report", str(image), str(labels), "--out", str(tmp_path / "cli2"),
                 "--fe", str(fe_json), "--no-progress"]) == 2
    assert f"{fe_json}: its body map {bodies.name} is missing beside it" in capsys.readouterr().err


def test_fe_panels_centre_the_joint_and_show_the_window_around_it():
    from hipseg.qc.figures import fe_panels

    bodies = np.ones((80, 10, 70), np.int64)
    bodies[20, 5, 30] = 7  # the joint centre's element
    spacing = np.array([1.0, 2.0, 1.5])
    [right, left] = fe_panels(bodies, spacing, {"right": np.array([20, 5, 30]), "left": None},
                              {"right": np.zeros(3), "left": None}, {1: "#ffffff", 7: "#ff0000"},
                              window_mm=30.0)
    assert left is None
    codes = right["codes"]
    x, y = right["marker"]
    assert codes[int(y / 1.5), int(x / 1.0)] == 7 and np.count_nonzero(codes == 7) == 1
    assert codes.shape == (21, 31)  # 30 mm across at 1.5 mm (rows) and 1 mm (columns), + 1
    assert right["extent"] == (0.0, 31.0, 31.5, 0.0)
    assert len(right["grid"][0]) == 32 and len(right["grid"][1]) == 22
