"""Several instances: the dispatch strategy, per-instance limits and the load facts they read."""
