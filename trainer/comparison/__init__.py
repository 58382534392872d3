"""The comparison job: samples against the data, feature by feature."""
