"""A deterministic fleet and channel simulator with labelled incidents."""

from rhythm_pipelines.simulate.fleet import SimConfig, Simulation, simulate

__all__ = ["SimConfig", "Simulation", "simulate"]
