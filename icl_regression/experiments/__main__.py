"""`python -m icl_regression.experiments`."""

from icl_regression.experiments.registry import main

main()
