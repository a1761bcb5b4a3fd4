"""In-context-learning experiments: each a registered evaluation loop over trained runs."""
