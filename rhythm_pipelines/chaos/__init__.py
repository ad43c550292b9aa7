"""Chaos: real incidents on this machine in a sandbox, to measure the healing loop end to end."""
