"""`python -m icl_regression.train`."""

from icl_regression.train.loop import main

main()
