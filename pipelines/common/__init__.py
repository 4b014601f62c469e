"""Mechanisms every stage shares: atomic writes, params, schemas, the split, metrics, the bootstrap."""
