"""Movie understanding: the knowledge graph, synthetic requests, LLM descriptions, the intent model and its evaluation."""
