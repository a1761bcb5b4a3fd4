"""In-context learning of linear regression: training, baselines, evaluation, probes, figures."""
