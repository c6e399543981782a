"""Exceptions raised by xtal for bad input.

Every error names the file (and where possible the CIF block, field or line)
and says what is wrong, so that a user can fix the input.
"""
from __future__ import annotations

from pathlib import Path


class XtalError(Exception):
    """Base class of every error xtal raises on purpose.

    Parameters
    ----------
    message : what is wrong.
    path : the file concerned, if any.
    block : CIF data-block name, if any.
    field : CIF tag, column name or line number, if any.
    """

    def __init__(self, message: str, *, path: str | Path | None = None,
                 block: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.block = block
        self.field = field
        where = []
        if self.path:
            where.append(f"file {self.path}")
        if block:
            where.append(f"block {block}")
        if field:
            where.append(f"field {field}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


# --- structures / CIF -------------------------------------------------------
class CifError(XtalError):
    """A CIF cannot be read or interpreted."""


class CifSyntaxError(CifError):
    """The file is not syntactically valid CIF (truncated, garbage, bad loop)."""


class EmptyFileError(CifError):
    """The file is empty or holds no data block."""


class MissingFieldError(CifError):
    """A required CIF item (cell, coordinates, …) is missing."""


class BlockNotFoundError(CifError):
    """The requested data block is not in the file, or the choice is ambiguous."""


class UnknownElementError(CifError):
    """A site's type symbol is not a chemical element xtal knows."""


class OccupancyError(CifError):
    """An occupancy is outside [0, 1] and not explained by disorder."""


class SymmetryError(CifError):
    """The space-group information is missing, unparseable or inconsistent."""


class StructureValidationError(CifError):
    """The structure is physically impossible (e.g. overlapping atoms)."""


# --- library ----------------------------------------------------------------
class LibraryError(XtalError):
    """The structure library or its manifest is inconsistent."""


class UnknownPhaseError(LibraryError):
    """A phase id is not in the library."""


class EmptySlotError(LibraryError):
    """A library slot has no CIF yet (the user must supply one)."""


# --- patterns ---------------------------------------------------------------
class PatternError(XtalError):
    """A measured or simulated pattern cannot be read, written or used."""


class PatternFormatError(PatternError):
    """A pattern file has an unknown or malformed format."""


class InvalidDataError(PatternError):
    """Pattern values are invalid (NaN/inf, non-monotonic x, negative counts…)."""


class MissingWavelengthError(PatternError):
    """A pattern has no known wavelength and none was given."""


class WavelengthMismatchError(PatternError):
    """A given wavelength contradicts the one stored in the file."""


class OverwriteError(XtalError):
    """An output would overwrite an input file or an existing file."""


class EmptyPatternError(PatternFormatError):
    """A pattern file (or series source) is empty or holds no data points."""


class SeriesError(PatternError):
    """A thermal series cannot be assembled (empty, inconsistent frames, bad log)."""


# --- simulation / analysis --------------------------------------------------
class SimulationError(XtalError):
    """A pattern cannot be simulated with the given parameters."""


class IdentificationError(XtalError):
    """Phase identification cannot run on this input."""


class GeometryError(XtalError):
    """Coordination geometry cannot be computed for this structure."""


# --- beam -------------------------------------------------------------------
class BeamError(PatternError, SimulationError):
    """A wavelength, tube name, Kα2 ratio or polarisation is invalid.

    Both a `PatternError` (raised while reading a pattern) and a `SimulationError` (raised while
    simulating one): the same bad beam is refused the same way everywhere.
    """


class WavelengthError(BeamError):
    """A wavelength or tube name cannot be read or is outside the X-ray powder range."""


class PolarizationError(BeamError):
    """A polarisation cannot be read or is unphysical."""
