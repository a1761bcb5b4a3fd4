"""`python -m icl_regression.evaluate`."""

from icl_regression.evaluate.runner import main

main()
