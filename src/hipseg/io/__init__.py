"""The files layer: images and label maps in NIfTI, NRRD, MetaImage and DICOM; datasets.

Everything is read into a :class:`~hipseg.core.volume.Volume` (array and voxel-to-RAS affine).
"""

from hipseg.io.datasets import Case, Dataset, find_cases, find_images, is_dicom_folder
from hipseg.io.formats import (
    IMAGE_SUFFIXES,
    NIFTI_SUFFIXES,
    OUTPUT_FORMATS,
    case_id,
    image_format,
    output_suffix,
)
from hipseg.io.images import (
    read_image,
    read_labels,
    read_map,
    reference_affine,
    write_image,
    write_labels,
)
from hipseg.io.layouts import MPUNET_SPLITS, find_dataset, find_label_maps, is_dataset_root
from hipseg.io.outputs import DERIVED_SUFFIXES, PredictionFiles

__all__ = [
    "DERIVED_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MPUNET_SPLITS",
    "NIFTI_SUFFIXES",
    "OUTPUT_FORMATS",
    "Case",
    "Dataset",
    "PredictionFiles",
    "case_id",
    "find_cases",
    "find_dataset",
    "find_images",
    "find_label_maps",
    "image_format",
    "is_dataset_root",
    "is_dicom_folder",
    "output_suffix",
    "read_image",
    "read_labels",
    "read_map",
    "reference_affine",
    "write_image",
    "write_labels",
]
