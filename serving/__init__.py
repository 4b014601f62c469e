"""The thin semrec reader: pulls a published snapshot, verifies it and answers queries.

Depends only on numpy, faiss, onnxruntime, tokenizers, pyarrow, fsspec and bm25s; never on
`pipelines`, torch, transformers, Beam or Polars.
"""
