"""Evaluation: model vs baselines over evaluation settings, the metrics, and eval.json."""
