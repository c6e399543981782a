"""The structure library: the manifest `structures/library.toml`, slots, models and user CIFs.

A library entry is a phase with its provenance and `kind`:

* ``refined`` — a published structure; ``surrogate`` — a real structure of a related compound used as a
  stand-in; ``model`` — coordinates built for this project (NOT a refinement; reports say so);
  ``slot`` — no CIF bundled (e.g. the five solvates of the source study, CCDC 2489735–2489739): the
  user supplies it; ``user`` — a CIF the user added that is not in the manifest.

User CIFs live in a directory (``$XTAL_USER_STRUCTURES``, default ``~/.xtal/structures``). A file
``ID.cif`` there fills the slot or replaces the model with that id, with no code change.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import gemmi

from xtal.errors import EmptySlotError, LibraryError, OverwriteError, UnknownPhaseError
from xtal.structures import MODEL_WARNING, Phase, infer_z, parse_formula, read_cif

__all__ = ["LibraryEntry", "Library", "bundled_structures_dir", "user_structures_dir", "add_user_cif",
           "MODEL_WARNING"]

KINDS = ("refined", "model", "surrogate", "slot", "user")
ROLES = ("solvate", "anhydrous", "reactant", "other")



def bundled_structures_dir() -> Path:
    """The project's `structures/` directory (overridable with $XTAL_LIBRARY_DIR)."""
    env = os.environ.get("XTAL_LIBRARY_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "structures"


def user_structures_dir() -> Path:
    """Directory of the user's own CIFs ($XTAL_USER_STRUCTURES, default ~/.xtal/structures)."""
    env = os.environ.get("XTAL_USER_STRUCTURES")
    return Path(env) if env else Path.home() / ".xtal" / "structures"


@dataclass
class LibraryEntry:
    """One phase of the library (filled or not)."""

    id: str
    name: str
    formula: str
    role: str
    kind: str
    cif: Path | None = None
    group: str = "other"
    metal: str | None = None
    notes: str = ""
    checks: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    replaces: str | None = None  # the manifest kind a user CIF replaced ("slot" or "model")
    block: str | None = None

    @property
    def filled(self) -> bool:
        return self.cif is not None

    @property
    def status(self) -> str:
        """Plain-language status for tables and reports."""
        if not self.filled:
            return "EMPTY SLOT — supply the CIF (xtal library add FILE.cif --id %s)" % self.id
        if self.kind == "model":
            return "MODEL (not refined)"
        if self.replaces:
            return f"user CIF (replaces {self.replaces})"
        return self.kind


class Library:
    """A set of library entries with lazy, cached CIF reading."""

    def __init__(self, entries: Iterable[LibraryEntry], *, root: Path | None = None) -> None:
        self.entries: dict[str, LibraryEntry] = {}
        for e in entries:
            if e.id in self.entries:
                raise LibraryError(f"duplicate phase id {e.id!r}", path=root)
            self.entries[e.id] = e
        self.root = root
        self._cache: dict[str, Phase] = {}

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def bundled(cls, *, user_dir: Path | None | bool = True) -> "Library":
        """The bundled manifest plus the user's CIF directory (pass ``user_dir=False`` to skip it)."""
        root = bundled_structures_dir()
        manifest = root / "library.toml"
        entries = _read_manifest(manifest)
        lib = cls(entries, root=root)
        if user_dir is not False:
            udir = user_structures_dir() if user_dir in (True, None) else Path(user_dir)
            lib._overlay_user_dir(udir)
        return lib

    @classmethod
    def from_directory(cls, directory: str | Path) -> "Library":
        """Every ``*.cif`` in a directory as a ``user`` entry whose id is the file stem."""
        d = Path(directory)
        if not d.is_dir():
            raise LibraryError("not a directory", path=d)
        entries = [LibraryEntry(id=p.stem, name=p.stem, formula="", role="other", kind="user", cif=p,
                                provenance={"source": str(p)})
                   for p in sorted(d.glob("*.cif"))]
        if not entries:
            raise LibraryError("no *.cif files in the directory", path=d)
        return cls(entries, root=d)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> "Library":
        """Given CIF files as ``user`` entries (id = file stem)."""
        entries = [LibraryEntry(id=Path(p).stem, name=Path(p).stem, formula="", role="other",
                                kind="user", cif=Path(p), provenance={"source": str(p)}) for p in paths]
        return cls(entries)

    def select(self, spec: str | Iterable[str] | None) -> "Library":
        """Sub-library from a spec: None/"bundled"/"all", a directory, a comma list or iterable of ids,
        or a group name ("dodecaborate", "validation")."""
        if spec is None or spec in ("bundled", "all"):
            return self
        if isinstance(spec, (str, os.PathLike)) and Path(spec).is_dir():
            return Library.from_directory(spec)
        if isinstance(spec, str) and spec in {e.group for e in self.entries.values()}:
            return Library([e for e in self.entries.values() if e.group == spec], root=self.root)
        ids = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
        out = []
        for i in ids:
            if i.endswith(".cif") and Path(i).is_file():
                out.append(LibraryEntry(id=Path(i).stem, name=Path(i).stem, formula="", role="other",
                                        kind="user", cif=Path(i), provenance={"source": i}))
            else:
                out.append(self.entry(i))
        return Library(out, root=self.root)

    # -- access --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries.values())

    def entry(self, phase_id: str) -> LibraryEntry:
        try:
            return self.entries[phase_id]
        except KeyError:
            close = self.suggest(phase_id)
            hint = f" — did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownPhaseError(f"no phase {phase_id!r} in the library{hint}; known: "
                                    f"{', '.join(sorted(self.entries))}") from None

    def suggest(self, phase_id: str, n: int = 3) -> list[str]:
        """Ids close to a mistyped one (case-insensitive, digit 0 read as letter O: PbS04 → PbSO4)."""
        import difflib

        def norm(t: str) -> str:
            return t.lower().replace("0", "o")

        by_norm = {norm(i): i for i in self.entries}
        hits = difflib.get_close_matches(norm(phase_id), list(by_norm), n=n, cutoff=0.75)
        return [by_norm[h] for h in hits]

    def phase(self, phase_id: str) -> Phase:
        """The Phase of a filled entry (read once, cached)."""
        e = self.entry(phase_id)
        if not e.filled:
            raise EmptySlotError(f"library slot {phase_id!r} ({e.name}) is empty: supply its CIF with "
                                 f"`xtal library add FILE.cif --id {phase_id}` or put {phase_id}.cif in "
                                 f"{user_structures_dir()}")
        if phase_id not in self._cache:
            kind = e.kind if e.kind in ("refined", "model", "surrogate") else "user"
            phase = read_cif(e.cif, block=e.block, phase_id=e.id, kind=kind, name=e.name)
            prov = phase.provenance
            prov.source = e.provenance.get("source") or prov.source
            prov.doi = prov.doi or e.provenance.get("doi")
            prov.icsd = prov.icsd or e.provenance.get("icsd")
            prov.cod = prov.cod or e.provenance.get("cod")
            prov.ccdc = prov.ccdc or e.provenance.get("ccdc")
            if phase.z is None and e.formula:
                z = infer_z(parse_formula(e.formula), phase.formula_from_sites())
                if z:
                    phase.z = z
                    phase.warnings[:] = [w for w in phase.warnings if not w.startswith("Z not given")]
                    phase.warnings.append(f"Z = {z:g} from the library formula {e.formula} "
                                          "(the CIF states no Z)")
            if kind == "model":
                prov.note = prov.note or MODEL_WARNING
                if MODEL_WARNING not in phase.warnings:
                    phase.warnings.insert(0, MODEL_WARNING)
            self._cache[phase_id] = phase
        return self._cache[phase_id]

    def phases(self, ids: Iterable[str] | None = None, *, include_models: bool = True) -> list[Phase]:
        """Phases of the filled entries (all, or the given ids), in manifest order."""
        chosen = list(ids) if ids is not None else [e.id for e in self.entries.values() if e.filled]
        out = []
        for i in chosen:
            e = self.entry(i)
            if not e.filled or (e.kind == "model" and not include_models and not e.replaces):
                continue
            out.append(self.phase(i))
        return out

    def published_ranges(self) -> dict[str, tuple[float, float]]:
        """Published M–O ranges (Å) by phase id, from the entries' ``checks``."""
        return {e.id: tuple(e.checks["M-O_angstrom"]) for e in self if "M-O_angstrom" in e.checks}

    def empty_slots(self) -> list[LibraryEntry]:
        return [e for e in self.entries.values() if not e.filled]

    def table(self) -> list[dict[str, Any]]:
        """One row per entry: id, formula, space group, cell, V, Z, density, kind, source."""
        rows = []
        for e in self.entries.values():
            row: dict[str, Any] = {"id": e.id, "name": e.name, "formula": e.formula, "role": e.role,
                                   "kind": e.kind, "status": e.status,
                                   "source": e.provenance.get("source", "")}
            if e.filled:
                p = self.phase(e.id)
                row.update({"spacegroup": p.spacegroup_hm, "a": p.cell.a, "b": p.cell.b, "c": p.cell.c,
                            "alpha": p.cell.alpha, "beta": p.cell.beta, "gamma": p.cell.gamma,
                            "volume_angstrom3": p.volume, "z": p.formula_units,
                            "density_g_cm3": p.density_calc, "n_warnings": len(p.warnings)})
            rows.append(row)
        return rows

    # -- user CIFs -------------------------------------------------------------------------------------
    def _overlay_user_dir(self, udir: Path) -> None:
        if not udir.is_dir():
            return
        for p in sorted(udir.glob("*.cif")):
            pid = p.stem
            if pid in self.entries:
                e = self.entries[pid]
                e.replaces = e.kind
                e.cif = p
                e.kind = "user"
                e.provenance = dict(e.provenance, user_file=str(p))
            else:
                self.entries[pid] = LibraryEntry(id=pid, name=pid, formula="", role="other", kind="user",
                                                 cif=p, provenance={"source": str(p)})
            self._cache.pop(pid, None)


def _read_manifest(path: Path) -> list[LibraryEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LibraryError("library manifest not found (set XTAL_LIBRARY_DIR to a structures/ "
                           "directory)", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise LibraryError(f"manifest is not valid TOML: {exc}", path=path) from None
    entries = []
    for i, raw in enumerate(data.get("phase", [])):
        where = f"phase[{i}]"
        for key in ("id", "name", "formula", "role", "kind"):
            if key not in raw:
                raise LibraryError(f"entry lacks {key!r}", path=path, field=where)
        if raw["kind"] not in KINDS:
            raise LibraryError(f"kind {raw['kind']!r} not one of {KINDS}", path=path, field=where)
        if raw["role"] not in ROLES:
            raise LibraryError(f"role {raw['role']!r} not one of {ROLES}", path=path, field=where)
        cif = raw.get("cif")
        if raw["kind"] == "slot" and cif:
            raise LibraryError("a slot must not name a CIF", path=path, field=where)
        if raw["kind"] != "slot" and not cif:
            raise LibraryError(f"kind {raw['kind']!r} needs a CIF", path=path, field=where)
        cif_path = (path.parent / cif) if cif else None
        if cif_path is not None and not cif_path.is_file():
            raise LibraryError(f"CIF {cif} of {raw['id']!r} does not exist", path=path, field=where)
        entries.append(LibraryEntry(id=raw["id"], name=raw["name"], formula=raw["formula"],
                                    role=raw["role"], kind=raw["kind"], cif=cif_path,
                                    group=raw.get("group", "other"), metal=raw.get("metal"),
                                    notes=raw.get("notes", ""), checks=dict(raw.get("checks", {})),
                                    provenance=dict(raw.get("provenance", {}))))
    if not entries:
        raise LibraryError("manifest has no [[phase]] entries", path=path)
    return entries


def add_user_cif(path: str | Path, phase_id: str, *, block: str | None = None,
                 directory: Path | None = None, overwrite: bool = False) -> Path:
    """Validate a CIF and store its structure block as ``ID.cif`` in the user directory.

    The CIF is parsed first (a fatal problem raises its `CifError`); only the chosen data block is
    written, atomically. An existing ``ID.cif`` is never replaced unless ``overwrite=True``.
    Returns the path written.
    """
    src = Path(path)
    phase = read_cif(src, block=block, phase_id=phase_id)
    target_dir = directory or user_structures_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{phase_id}.cif"
    if target.exists() and not overwrite:
        raise OverwriteError(f"{target} exists; pass --force to replace it", path=target)
    if target.resolve() == src.resolve():
        raise OverwriteError("source and destination are the same file", path=src)
    doc = gemmi.cif.read(str(src))
    out = gemmi.cif.Document()
    out.add_copied_block(doc.find_block(phase.block))
    text = (f"# added to the xtal library as {phase_id!r} from {src.name}\n"
            + out.as_string(gemmi.cif.Style.Simple))
    from xtal.util import atomic_write_text

    atomic_write_text(target, text)
    return target
