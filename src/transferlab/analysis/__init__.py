"""Analyses as pure functions on arrays (features, labels): transferability scores and strategy advice."""
