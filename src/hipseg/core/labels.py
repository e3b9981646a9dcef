"""Label tables: class ids, names and the symmetric left/right pairs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LABELS", "LabelTable"]


@dataclass(frozen=True)
class LabelTable:
    """Class ids and names of a segmentation task.

    Parameters
    ----------
    names : tuple of str
        ``names[i]`` is the name of class id ``i``; id 0 is background.
    symmetric_pairs : tuple of (int, int)
        Pairs of ids ``(right, left)`` of the same structure on the patient's right and left.
        Sides are the patient's, in RAS scanner space.
    """

    names: tuple[str, ...]
    symmetric_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise ValueError("a label table needs background and at least one class")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"label names must be unique, got {self.names}")
        for pair in self.symmetric_pairs:
            if len(pair) != 2 or not all(0 < i < len(self.names) for i in pair) or pair[0] == pair[1]:
                raise ValueError(f"symmetric pair {pair} must name two different foreground ids")

    @property
    def n_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.names)

    @property
    def foreground_ids(self) -> tuple[int, ...]:
        """Ids of all classes except background."""
        return tuple(range(1, len(self.names)))

    @property
    def mirrored_ids(self) -> tuple[int, ...]:
        """``mirrored_ids[i]``: the id of class ``i`` on the patient's other side (``i`` for a
        class without a pair), i.e. the id mapping of a left/right mirror image."""
        ids = list(range(self.n_classes))
        for right, left in self.symmetric_pairs:
            ids[right], ids[left] = left, right
        return tuple(ids)

    def id_of(self, name: str) -> int:
        """Return the id of class ``name``; raise ``KeyError`` naming the known classes."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown class {name!r}; known: {', '.join(self.names)}") from None

    def to_dict(self) -> dict:
        """A plain dict for YAML."""
        return {"names": list(self.names), "symmetric_pairs": [list(p) for p in self.symmetric_pairs]}

    @classmethod
    def from_dict(cls, data: dict) -> LabelTable:
        """Inverse of :meth:`to_dict`."""
        return cls(
            names=tuple(data["names"]),
            symmetric_pairs=tuple(tuple(p) for p in data.get("symmetric_pairs", ())),
        )


#: The paper's classes, with the ids of its published data.
DEFAULT_LABELS = LabelTable(
    names=("background", "femur_right", "femur_left", "hip_right", "hip_left", "sacrum"),
    symmetric_pairs=((1, 2), (3, 4)),
)
