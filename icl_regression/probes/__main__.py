"""`python -m icl_regression.probes`."""

from icl_regression.probes.runner import main

main()
