"""Metrics: the long-format schema, its validation, the stores and the sources that feed them."""
