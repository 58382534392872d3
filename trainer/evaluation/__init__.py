"""The evaluation job: held-out likelihood of any registered model."""
