"""What a service needs at request time beyond the models themselves: retrieval
indexes over item embeddings (`ann`)."""
