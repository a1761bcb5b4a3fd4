"""Figures from stored results only (eval.json, probes.json, metrics.jsonl, records): no JAX,
no model code."""
