"""Anomaly detection: causal detectors, their ensemble, alert events and window-based evaluation."""
