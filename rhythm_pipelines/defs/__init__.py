"""Dagster wiring only: resources, partitions, assets, checks, jobs and sensors over the domain code."""
