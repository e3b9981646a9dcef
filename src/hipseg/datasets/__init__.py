"""Datasets to train on: phantoms written to disk (``phantom``), nnU-Net export and
TotalSegmentator import (``ecosystem``)."""
