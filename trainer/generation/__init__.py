"""The batch generation job: shards, resume, manifest, storage, previews; it knows no model."""
