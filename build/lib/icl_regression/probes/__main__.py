"""`python -m icl_regression.probes`."""

from icl_regression.probes.app import main

main()
