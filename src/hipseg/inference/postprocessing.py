"""Post-processing existing label maps (``hipseg postprocess``)."""

from __future__ import annotations

import logging
from pathlib import Path

from hipseg.core.labels import LabelTable
from hipseg.io import read_labels, write_labels
from hipseg.postprocess import PostprocessReport, symmetric_components_with_report

__all__ = ["postprocess_files"]

logger = logging.getLogger(__name__)


def postprocess_files(paths: list[Path], labels: LabelTable, out_dir: Path, *,
                      connectivity: int = 26) -> list[PostprocessReport]:
    """Symmetric connected components on each map; writes ``OUT/<same name>`` on the same grid."""
    reports = []
    for path in paths:
        volume = read_labels(path, labels)
        result, report = symmetric_components_with_report(volume.data, labels,
                                                          connectivity=connectivity)
        target = Path(out_dir) / Path(path).name
        write_labels(target, result, reference=path)
        logger.info("wrote %s: moved %d voxels to the other side, removed %d", target,
                    report.total_moved, report.total_removed)
        reports.append(report)
    return reports
