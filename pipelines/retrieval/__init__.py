"""The retrieval wing: every ranking the pipeline computes, through the reader's own BM25 and fusion.

encode     the one FP32 sentence-transformers encode (L2-normalised, batched)
exact      exact search over (documents, vectors): the candidates and fusion of serving's Snapshot, no HNSW
shipped    serving's Snapshot over the pipeline's local folders (the INT8 encoder, HNSW, BM25, prior)
systems    the named systems evaluate ranks: popularity, bm25, bm25_prior, the models, shipped
validation how train and select score an encoder on the validation split
"""
