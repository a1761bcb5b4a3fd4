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
from icl_regression.registry import import_submodules

__all__ = ["FAMILIES", "Family", "FamilySample", "check_task", "family_of", "register_family",
           "sample_family"]

# Every module of this package registers its family on import (the stream ids are fixed in the
# files): a new family is one new file here, or in a plugin.
import_submodules(__name__, skip=("registry",))
