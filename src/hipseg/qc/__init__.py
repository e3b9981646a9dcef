"""Quality control. Takes label maps (and the disagreement maps of prediction); gives the
review ranking of collisions (``review``), FE-ready meshes with their QC (``meshing``) and the
HTML report (``report``)."""
