"""FE stage. Takes a label map whose gaps are kept; gives a finite-element model: bones and
cartilage as tagged bodies of one conforming tetrahedral mesh, with the joints' contact pairs
(``model``)."""

#: The file formats an FE model is written in (``hipseg.fe.export``).
FORMATS = ("feb", "inp", "msh", "vtu")
