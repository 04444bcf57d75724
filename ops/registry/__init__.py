"""Model versions: the registry (Redis), what each version's embedder is, and where writes go."""
