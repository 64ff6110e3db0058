"""Separation jobs at scale: a JetStream work queue, S3-compatible object storage, warm workers."""
