"""`python -m icl_regression.train`."""

from icl_regression.train.app import main

main()
