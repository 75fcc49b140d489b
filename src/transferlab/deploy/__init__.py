"""Carrying a trained model to production: ONNX export, the prediction server and its web page."""
