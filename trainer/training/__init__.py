"""The training job: one loop for every model (loop.py), the strategy, the job lock."""
