"""The real measured patterns of ../shared/reference/patterns used by the identification tests, with
their true phases and the impurities they are allowed (shared by test_identify_real*.py)."""
from __future__ import annotations

from tests.conftest import REF_PATTERNS
from xtal.io import read_pattern

P = REF_PATTERNS


def read_pbso4():
    return read_pattern(P / "lab_PbSO4_CuKa" / "PBSO4.XRA", instrument=P / "lab_PbSO4_CuKa" / "INST_XRY.PRM")


CASES = {
    # name: (reader, truth, allowed impurities, polarization)
    "PbSO4": (read_pbso4, {"PbSO4"}, set(), None),
    "NAC": (lambda: read_pattern(P / "sync_NAC_11BM" / "11BM_NAC.fxye"), {"NAC"}, {"CaF2"}, "synchrotron"),
    "BiFeO3": (lambda: read_pattern(P / "lab_BiFeO3_CuKa" / "BiFeO3.xy", wavelength_angstrom="CuKa"),
               {"BiFeO3"}, {"Bi2Fe4O9", "Bi25FeO39"}, None),
    "LaB6": (lambda: read_pattern(P / "lab_LaB6_SRM660" / "NIST660CBI.gsas", wavelength_angstrom="CuKa"),
             {"LaB6"}, set(), None),
    "CaNi(PO3)4": (lambda: read_pattern(P / "lab_CaNiPO34_CuKa" / "CaNi_PO3_4_800C.xy", wavelength_angstrom="CuKa"),
                   {"CaNi_PO3_4"}, {"NiO"}, None),
}


