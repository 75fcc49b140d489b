"""The trainable networks (PyTorch): image classifiers on a backbone, the text transformer classifier, word CNN/RNN."""
