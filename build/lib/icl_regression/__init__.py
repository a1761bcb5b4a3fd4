"""In-context learning of linear regression: training, baselines, evaluation, probes, figures."""


def load_run(run_dir, step=None):
    """A trained run: `.predict(xs, ys)`, `.sample(key, batch_size)`, `.intermediates(...)`."""
    from icl_regression.run import load_run as _load_run

    return _load_run(run_dir, step)
