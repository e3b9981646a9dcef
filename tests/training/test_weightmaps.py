"""The weight-map cache: keyed by the label file's content and the settings."""

from __future__ import annotations

import numpy as np
import pytest

from hipseg.cli import main
from hipseg.core.config import WeightMapConfig
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.io import Case, read_labels, write_image, write_labels
from hipseg.training import weightmaps
from hipseg.training.weightmaps import cache_path, cached_weight_map, weight_map_of

AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])


def _write_case(data_dir, gap: int) -> Case:
    labels = np.zeros((30, 14, 14), np.uint8)
    labels[2:12, 2:12, 2:12] = 1
    labels[12 + gap : 26, 2:12, 2:12] = 3
    write_image(data_dir / "images" / "a.nii.gz", np.zeros(labels.shape, np.float32), AFFINE)
    write_labels(data_dir / "labels" / "a.nii.gz", labels, reference=data_dir / "images" / "a.nii.gz")
    return Case("a", data_dir / "images" / "a.nii.gz", data_dir / "labels" / "a.nii.gz")


def _cached(case: Case, settings: WeightMapConfig) -> np.ndarray:
    return cached_weight_map(case, read_labels(case.labels, DEFAULT_LABELS), settings)


def test_cache_is_reused_and_recomputed_when_settings_or_labels_change(tmp_path, monkeypatch):
    case = _write_case(tmp_path, gap=2)
    settings = WeightMapConfig(enabled=True)
    first = _cached(case, settings)
    path = cache_path(case, settings)
    assert path.parent == tmp_path / "weightmaps" / "labels" and path.is_file()
    np.testing.assert_array_equal(first, weight_map_of(read_labels(case.labels, DEFAULT_LABELS),
                                                       settings))

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(weightmaps, "distance_weight_map", refuse)
    np.testing.assert_array_equal(_cached(case, settings), first)
    monkeypatch.undo()

    plain = WeightMapConfig(enabled=True, w0=10.0, erode=False)
    assert cache_path(case, plain) != path
    narrow = _cached(case, plain)
    assert first.max() > 1.0 and not np.array_equal(narrow, first)
    assert not path.exists(), "the stale map of other settings is removed"

    old_path = cache_path(case, plain)
    _write_case(tmp_path, gap=3)  # a corrected label map: same name, new content
    assert cache_path(case, plain) != old_path
    wider = _cached(case, plain)
    assert wider.max() < narrow.max()
    assert sorted(p.name for p in path.parent.iterdir()) == [cache_path(case, plain).name]


def test_each_kind_of_map_has_its_own_key(tmp_path):
    case = _write_case(tmp_path, gap=2)
    kinds = [WeightMapConfig(enabled=True), WeightMapConfig(ignore_contacts_mm=2.0),
             WeightMapConfig(enabled=True, ignore_contacts_mm=2.0),
             WeightMapConfig(enabled=True, ignore_contacts_mm=3.0)]
    assert len({cache_path(case, k) for k in kinds}) == len(kinds)


def test_contact_band_zeroes_the_loss_around_touching_bones_only(tmp_path):
    """Touching blocks (gap 0): weight 0 within the band of their contact plane (x 11 | 12 at
    1.5 mm), 1 (or the map) elsewhere; with a real gap nothing is ignored."""
    labels = read_labels(_write_case(tmp_path, gap=0).labels, DEFAULT_LABELS)
    band_only = weight_map_of(labels, WeightMapConfig(ignore_contacts_mm=3.0))
    x_zero = np.flatnonzero((band_only == 0).any(axis=(1, 2)))
    # contact voxels x = 11, 12; 3 mm at 1.5 mm per voxel reaches 2 voxels further each way
    np.testing.assert_array_equal(x_zero, np.arange(9, 15))
    assert set(np.unique(band_only)) == {0.0, 1.0}
    both = weight_map_of(labels, WeightMapConfig(enabled=True, ignore_contacts_mm=3.0))
    plain = weight_map_of(labels, WeightMapConfig(enabled=True))
    np.testing.assert_array_equal(both, np.where(band_only == 0, 0.0, plain))

    apart = read_labels(_write_case(tmp_path, gap=2).labels, DEFAULT_LABELS)
    assert (weight_map_of(apart, WeightMapConfig(ignore_contacts_mm=3.0)) == 1).all()


def test_weightmap_command_writes_nifti(tmp_path, capsys):
    _write_case(tmp_path, gap=2)
    assert main(["weightmap", str(tmp_path), "--write-nifti", "--no-erosion", "--no-progress"]) == 0
    written = tmp_path / "weightmaps" / "labels" / "a_weights.nii.gz"
    assert written.is_file()
    assert "1 weight map(s)" in capsys.readouterr().out


def test_unwritable_cache_is_a_clear_error(tmp_path):
    case = _write_case(tmp_path, gap=2)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception, match="weight-map cache"):
        cached_weight_map(case, read_labels(case.labels, DEFAULT_LABELS), WeightMapConfig(),
                          cache_root=blocker)
