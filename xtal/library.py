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

from xtal.errors import EmptySlotError, LibraryError, UnknownPhaseError, XtalError
from xtal.structures import MODEL_WARNING, Phase, infer_z, parse_formula, read_cif

__all__ = ["LibraryEntry", "Library", "bundled_structures_dir", "user_structures_dir", "add_user_cif",
           "MODEL_WARNING", "check_entry_fit", "SlotMismatchError"]


class SlotMismatchError(LibraryError):
    """A CIF put into a library entry does not match the entry's formula or published geometry."""


#: What `check_entry_fit` compares (see its docstring).
METAL_BORON_RTOL = 0.02        # M : B is stoichiometric (2 : 12 in M2B12H12)
SOLVENT_RTOL = 0.15            # C, O, N, … per B (or per metal): partial solvent occupancy allowed
M_O_TOLERANCE_ANGSTROM = 0.05  # beyond the published M–O range (different T, s.u.)
_IGNORED_ELEMENTS = {"H", "D"}  # H is often not modelled or riding

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


def check_entry_fit(entry: LibraryEntry, phase: Phase) -> list[str]:
    """Why ``phase`` does not belong in ``entry`` (empty list: it fits).

    Compared, when the entry states them:

    * **elements** — the set of elements other than H/D of the entry's formula and of the CIF's sites
      must be equal (H is ignored: it is often not modelled);
    * **metal : boron** — with both present, the ratio from the sites must equal the formula's within
      `METAL_BORON_RTOL` (stoichiometric in M2B12H12);
    * **solvent** — every other element (C, O, N, …) counted per B (else per metal, else per the
      first element) must equal the formula's within `SOLVENT_RTOL`: a partly occupied or disordered
      solvent passes, a different solvate (1.5 DME vs 2 diglyme, 2 vs 4 diglyme) does not;
    * **M–O distances** — with ``checks["M-O_angstrom"] = [lo, hi]`` and the entry's metal: every
      M–O bond found by `xtal.geometry.analyse_geometry` must lie in [lo − 0.05, hi + 0.05] Å
      (`M_O_TOLERANCE_ANGSTROM`), and with ``checks["cn"]`` every metal site's CN must equal it.
    """
    problems: list[str] = []
    if entry.formula:
        want = {k: v for k, v in parse_formula(entry.formula).items() if k not in _IGNORED_ELEMENTS}
        have = {("H" if k == "D" else k): v for k, v in phase.formula_from_sites().items()}
        have = {k: v for k, v in have.items() if k not in _IGNORED_ELEMENTS and v > 0}
        if set(want) != set(have):
            problems.append(f"elements differ: the entry's formula {entry.formula} has "
                            f"{'/'.join(sorted(want)) or 'none'} (besides H), the CIF has "
                            f"{'/'.join(sorted(have)) or 'none'}")
        else:
            ref = "B" if "B" in want else (entry.metal if entry.metal in want else sorted(want)[0])
            metal = entry.metal if entry.metal in want else None
            for el in sorted(want):
                if el == ref:
                    continue
                w_ratio, h_ratio = want[el] / want[ref], have[el] / have[ref]
                tol = METAL_BORON_RTOL if el == metal and ref == "B" else SOLVENT_RTOL
                if abs(h_ratio - w_ratio) > tol * w_ratio:
                    problems.append(f"{el}:{ref} is {h_ratio:.3f} in the CIF but {w_ratio:.3f} in the "
                                    f"entry's formula {entry.formula} (tolerance {100 * tol:.0f} %)")
    m_o = entry.checks.get("M-O_angstrom")
    if not problems and entry.metal and (m_o or "cn" in entry.checks):
        from xtal.geometry import analyse_geometry

        try:
            g = analyse_geometry(phase, metals=entry.metal, chemenv=False, no_metal="empty",
                                 compare_cif=False)
        except XtalError as exc:
            problems.append(f"the {entry.metal} coordination cannot be computed ({exc})")
            g = None
        if g is not None and not g.sites:
            problems.append(f"the CIF has no {entry.metal} site")
        elif g is not None:
            from xtal.geometry import CONTACT_KINDS

            dists = [b.distance for s in g.sites for b in s.bonds
                     if b.element == "O" and b.kind not in CONTACT_KINDS]
            if m_o and dists:
                lo, hi = float(m_o[0]) - M_O_TOLERANCE_ANGSTROM, float(m_o[1]) + M_O_TOLERANCE_ANGSTROM
                bad = [d for d in dists if not lo <= d <= hi]
                if bad:
                    problems.append(f"{entry.metal}–O distances {', '.join(f'{d:.3f}' for d in sorted(bad))} Å "
                                    f"lie outside the published {m_o[0]}–{m_o[1]} Å (± "
                                    f"{M_O_TOLERANCE_ANGSTROM} Å)")
            elif m_o:
                problems.append(f"the CIF has no {entry.metal}–O bond; published {m_o[0]}–{m_o[1]} Å")
            cn = entry.checks.get("cn")
            if cn is not None:
                cns = sorted({s.cn for s in g.sites})
                if cns != [int(cn)]:
                    problems.append(f"{entry.metal} coordination number {cns} differs from the published {cn}")
    return problems


def add_user_cif(path: str | Path, phase_id: str, *, block: str | None = None,
                 directory: Path | None = None, overwrite: bool = False,
                 accept_mismatch: bool = False) -> Path:
    """Validate a CIF and store its structure block as ``ID.cif`` in the user directory.

    The target is checked first (never the source itself; an existing ``ID.cif`` only with
    ``overwrite``), then the CIF is parsed (a fatal problem raises its `CifError`) and, when ``ID`` is
    an entry of the bundled manifest with a formula or checks, compared with it (`check_entry_fit`):
    a mismatch raises `SlotMismatchError` saying why, unless ``accept_mismatch`` (CLI ``--force``).
    Only the chosen data block is written, atomically.  Returns the path written.
    """
    from xtal.util import check_writable

    src = Path(path)
    target_dir = directory or user_structures_dir()
    target = target_dir / f"{phase_id}.cif"
    check_writable(target, overwrite=overwrite, protected=(src,))
    phase = read_cif(src, block=block, phase_id=phase_id)
    manifest = {e.id: e for e in _read_manifest(bundled_structures_dir() / "library.toml")}
    entry = manifest.get(phase_id)
    if entry is not None and not accept_mismatch:
        problems = check_entry_fit(entry, phase)
        if problems:
            raise SlotMismatchError(f"{src.name} does not look like {entry.id} ({entry.name}): "
                                    + "; ".join(problems) + ". Check which CCDC deposition this is; "
                                    "use --force to add it anyway", path=src)
    target_dir.mkdir(parents=True, exist_ok=True)
    doc = gemmi.cif.read(str(src))
    out = gemmi.cif.Document()
    out.add_copied_block(doc.find_block(phase.block))
    text = (f"# added to the xtal library as {phase_id!r} from {src.name}\n"
            + out.as_string(gemmi.cif.Style.Simple))
    from xtal.util import atomic_write_text

    atomic_write_text(target, text)
    return target
