"""Task families, one file each, registered by name (data/families/registry.py)."""

from icl_regression.data.families.registry import (
    FAMILIES,
    Family,
    FamilySample,
    check_task,
    family_of,
    register_family,
    sample_family,
)

# Each import registers its family; the stream ids are fixed in the files, so the order here
# only orders the names.
# isort: off
from icl_regression.data.families import (  # noqa: F401
    linear, sparse_linear, noisy_linear, linear_classification, quadratic, relu2nn,
    decision_tree, noise_mixture, mixture)
# isort: on

__all__ = ["FAMILIES", "Family", "FamilySample", "check_task", "family_of", "register_family",
           "sample_family"]
