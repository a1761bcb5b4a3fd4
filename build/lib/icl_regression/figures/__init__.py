"""Figures from stored results only (eval.json, probes.json, attention.npz, metrics.jsonl,
experiment records, lsa_numbers.json): no JAX, no model code."""
