"""The package version, in a module of its own so that subpackages can record it without importing the package root
(whose lazy exports import the workflows: that would be an import cycle)."""

__version__ = "0.1.0"
