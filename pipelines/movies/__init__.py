"""Movie understanding: knowledge graph, synthetic requests, pseudo-queries, LLM descriptions, the intent model."""
