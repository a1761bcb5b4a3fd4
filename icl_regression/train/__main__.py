"""`python -m icl_regression.train`."""

from icl_regression.train.task import main

main()
