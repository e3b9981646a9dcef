"""Post-processing existing label maps (``hipseg postprocess``)."""

from __future__ import annotations

import logging
from pathlib import Path

from hipseg.core.labels import LabelTable
from hipseg.io import read_labels, write_labels
from hipseg.io.guard import check_output_folder, refuse_name_clashes, refuse_overwriting_inputs
from hipseg.postprocess import PostprocessReport, symmetric_components_with_report

__all__ = ["postprocess_files"]

logger = logging.getLogger(__name__)


def postprocess_files(paths: list[Path], labels: LabelTable, out_dir: Path, *,
                      connectivity: int = 26) -> list[PostprocessReport]:
    """Symmetric connected components on each map; writes ``OUT/<same name>`` on the same grid.

    Raises
    ------
    InputError
        Before anything is written: ``out_dir`` not writable, an output that would replace an
        input, two inputs with the same file name.
    """
    targets = [Path(out_dir) / Path(path).name for path in paths]
    check_output_folder(out_dir)
    refuse_overwriting_inputs(paths, targets)
    refuse_name_clashes(zip(paths, targets))
    reports = []
    for path, target in zip(paths, targets):
        volume = read_labels(path, labels)
        result, report = symmetric_components_with_report(volume.data, labels,
                                                          connectivity=connectivity)
        write_labels(target, result, reference=path)
        logger.info("wrote %s: moved %d voxels to the other side, removed %d", target,
                    report.total_moved, report.total_removed)
        reports.append(report)
    return reports
