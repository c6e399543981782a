"""xtal — crystallography and powder diffraction of metal dodecaborates and their glyme solvates."""
from xtal.errors import XtalError

__version__ = "0.1.0"
__all__ = ["XtalError", "__version__"]
