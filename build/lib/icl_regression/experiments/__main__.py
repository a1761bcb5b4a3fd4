"""`python -m icl_regression.experiments`."""

from icl_regression.experiments.app import main

main()
