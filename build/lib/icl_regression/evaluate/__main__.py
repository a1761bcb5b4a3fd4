"""`python -m icl_regression.evaluate`."""

from icl_regression.evaluate.app import main

main()
