"""Inference stage. Takes a model folder and CT files; gives label maps on each input's grid.

Fusing the views' probabilities for one volume (``predict``), the 3D baseline's sliding window
(``predict3d``), finding the hips in a larger scan (``localize``), files, post-processing and
|E| per scan (``predict``), cohorts in parallel (``batch``), post-processing label-map files
(``postprocessing``). Never imports the training stage.
"""
