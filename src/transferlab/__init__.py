"""transferlab: transfer learning on images and text for small labelled datasets, offline, on a CPU."""

__version__ = "0.1.0"
