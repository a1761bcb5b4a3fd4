"""Training: the jitted multi-step update, its loop, checkpoints, device mesh and metrics log."""

from icl_regression.train.loop import train_run

__all__ = ["train_run"]
