"""The recurrence, sequence training, scoring and sampler of the temporal models."""
