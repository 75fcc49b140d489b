"""Loading and validating datasets; every bad input gets a clear message."""

from transferlab.data.images import ImageDataset, load_image, resolve_image_data, stratified_split
from transferlab.data.report import DataReport

__all__ = ["DataReport", "ImageDataset", "load_image", "resolve_image_data", "stratified_split"]
