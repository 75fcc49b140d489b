"""Frozen features of any modality: image backbones through ONNX Runtime, text encoders, TF-IDF;
all through the content-keyed cache."""
