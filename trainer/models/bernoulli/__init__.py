"""Independent Bernoulli units per frame, the baseline: see model.py."""
