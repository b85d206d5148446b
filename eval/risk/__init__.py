"""Risk assessment evaluation: labelled visits (scenarios.yaml) and their runner (run.py)."""
