"""Multi-planar geometry: view directions, plane grids in scanner space, sampling and mapping back."""

from hipseg.views.directions import view_directions
from hipseg.views.grid import ViewGrid, prediction_grid, view_basis
from hipseg.views.mapping import map_stack_to_voxels
from hipseg.views.sampling import sample_planes

__all__ = [
    "ViewGrid",
    "map_stack_to_voxels",
    "prediction_grid",
    "sample_planes",
    "view_basis",
    "view_directions",
]
