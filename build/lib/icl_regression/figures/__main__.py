"""`python -m icl_regression.figures`."""

from icl_regression.figures.app import main

main()
