"""The files of one prediction: the one owner of every derived file's name.

``predict`` writes the label map ``OUT/<case><ext>`` and, when asked, the probabilities and the
view-disagreement ("uncertainty") map beside it in the same format; ``collisions`` writes a
collision map, ``evaluate`` a gap-region map, ``mesh`` a mesh QC file and ``report`` a page.
Every verb finds the others' files through :class:`PredictionFiles`, so a NRRD prediction's
uncertainty map is found as surely as a NIfTI one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hipseg.io.formats import case_id, output_suffix

__all__ = ["DERIVED_SUFFIXES", "PredictionFiles"]

#: Name endings (before the file suffix) of maps derived from a label map; such files are not
#: label maps themselves.
DERIVED_SUFFIXES = ("_probabilities", "_uncertainty", "_collisions", "_gap")


@dataclass(frozen=True)
class PredictionFiles:
    """Where each output of one case lies.

    Parameters
    ----------
    out_dir : Path
        The folder of the label map.
    case : str
        Case id (the input's name without its image suffix).
    ext : str
        File ending of the label map and the maps beside it, e.g. ``.nii.gz`` or ``.nrrd``.
    """

    out_dir: Path
    case: str
    ext: str = ".nii.gz"

    @classmethod
    def for_input(cls, out_dir: Path, input_path: Path, output_format: str) -> PredictionFiles:
        """The outputs ``predict`` writes for ``input_path`` (raises ``ValueError`` on a format
        that cannot be written for it, as :func:`~hipseg.io.formats.output_suffix`)."""
        return cls(Path(out_dir), case_id(input_path), output_suffix(output_format, input_path))

    @classmethod
    def beside(cls, label_map: Path) -> PredictionFiles:
        """The outputs that belong to an existing label map, in its folder and format."""
        label_map = Path(label_map)
        case = case_id(label_map)
        return cls(label_map.parent, case, label_map.name[len(case):])

    def _map(self, suffix: str) -> Path:
        return self.out_dir / f"{self.case}{suffix}{self.ext}"

    @property
    def labels(self) -> Path:
        return self._map("")

    @property
    def probabilities(self) -> Path:
        return self._map("_probabilities")

    @property
    def uncertainty(self) -> Path:
        return self._map("_uncertainty")

    def collisions(self, folder: Path) -> Path:
        """The collision map written by ``collisions --out FOLDER``."""
        return Path(folder) / f"{self.case}_collisions{self.ext}"

    def gap_region(self, folder: Path) -> Path:
        """The gap region written by ``evaluate --save-gap-regions FOLDER``."""
        return Path(folder) / f"{self.case}_gap{self.ext}"

    def mesh_qc(self, folder: Path) -> Path:
        return Path(folder) / f"{self.case}_mesh_qc.json"

    def report(self, folder: Path) -> Path:
        return Path(folder) / f"{self.case}_report.html"

    @staticmethod
    def is_derived(path: Path) -> bool:
        """Whether ``path`` is a map derived from a label map rather than a label map."""
        return case_id(path).endswith(DERIVED_SUFFIXES)
