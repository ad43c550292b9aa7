"""Self-healing: event detectors, playbooks, safe actions, the healing engine and its log (no Dagster)."""
