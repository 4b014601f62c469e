"""The ingest stage: catalog plug-ins read raw files, the filter rules run on either engine (Polars or Beam)."""
