"""``hipseg check``: run every input check over a dataset before anyone trains on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.io import Dataset, read_image, read_labels
from hipseg.io.sides import check_sides

__all__ = ["CaseCheck", "check_dataset", "format_checks"]


@dataclass(frozen=True)
class CaseCheck:
    """The outcome for one case: its geometry and classes when it is fine, else the problem."""

    case_id: str
    shape: tuple[int, ...] | None
    spacing_mm: tuple[float, ...] | None
    classes: tuple[int, ...]
    problem: str | None
    #: Doubts that do not stop training, e.g. side classes on the wrong side of the midline.
    warning: str | None = None


def check_dataset(dataset: Dataset, labels: LabelTable, *, strict: bool = False
                  ) -> list[CaseCheck]:
    """Check every image, its label map (ids, shape, affine, sides), and partners missing on
    either side.

    ``dataset`` comes from :func:`hipseg.io.find_dataset` (any layout). Side classes on the
    wrong side of the midline are a warning, or a problem with ``strict``.
    """
    images, label_maps = dataset.images, dataset.labels
    results = []
    for cid in sorted(set(images) | set(label_maps)):
        if cid not in images:
            results.append(CaseCheck(cid, None, None, (), str(InputError(
                label_maps[cid], f"no image for case {cid!r} in {dataset.root}"))))
            continue
        try:
            image = read_image(images[cid])
            if cid not in label_maps:
                raise InputError(images[cid], f"no label map for case {cid!r} in {dataset.root}")
            label_map = read_labels(label_maps[cid], labels, reference=image)
            warning = check_sides(label_maps[cid], label_map, labels, strict=strict)
            present = tuple(int(v) for v in np.unique(label_map.data) if v)
            results.append(CaseCheck(cid, image.shape, tuple(float(s) for s in image.spacing_mm),
                                     present, None, warning))
        except InputError as err:
            results.append(CaseCheck(cid, None, None, (), str(err)))
    return results


def format_checks(results: list[CaseCheck], labels: LabelTable) -> str:
    """One line per case, then a count of the cases with problems."""
    lines = [f"{'case':<20} {'shape':<16} {'spacing (mm)':<20} {'classes':<14} status"]
    for r in results:
        shape = "x".join(map(str, r.shape)) if r.shape else "-"
        spacing = " x ".join(f"{s:.2f}" for s in r.spacing_mm) if r.spacing_mm else "-"
        missing = [labels.names[c] for c in labels.foreground_ids if c not in r.classes]
        status = r.problem or ("ok" if not missing else f"ok (missing: {', '.join(missing)})")
        if r.warning is not None:
            status += f"; WARNING: {r.warning}"
        classes = ",".join(map(str, r.classes)) or "-"
        lines.append(f"{r.case_id:<20} {shape:<16} {spacing:<20} {classes:<14} {status}")
    bad = sum(r.problem is not None for r in results)
    doubtful = sum(r.warning is not None for r in results)
    lines.append(f"\n{len(results)} cases, {bad} with problems"
                 + (f", {doubtful} with warnings (--strict makes them problems)" if doubtful else ""))
    return "\n".join(lines)
