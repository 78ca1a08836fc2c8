"""The one unit system of raycg and the conversions at its boundaries.

Inside raycg: length Å, energy kcal/mol, force kcal/mol/Å, time ps, mass amu (g/mol),
temperature K. Importers convert at the boundary with the factors below; nothing else in
the code base may hard-code a conversion factor.
"""

from __future__ import annotations

#: Boltzmann constant in kcal/mol/K.
KB_KCAL_PER_MOL_K: float = 0.0019872041

#: 1 kcal/mol/(Å·amu) expressed in Å/ps². Acceleration = force / mass * this factor.
#: This is the *only* place in raycg where this factor lives.
ACCEL_FACTOR_A_PER_PS2: float = 418.4

#: Kinetic energy: 0.5 * m[amu] * v[Å/ps]^2 / ACCEL_FACTOR -> kcal/mol.
KJ_PER_KCAL: float = 4.184
NM_TO_ANGSTROM: float = 10.0
ANGSTROM_TO_NM: float = 0.1
#: 1 kJ/mol/nm in kcal/mol/Å.
KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A: float = 1.0 / (KJ_PER_KCAL * NM_TO_ANGSTROM)
FS_TO_PS: float = 1.0e-3
NS_TO_PS: float = 1.0e3

LENGTH_UNITS = {"angstrom": 1.0, "A": 1.0, "nm": NM_TO_ANGSTROM}
ENERGY_UNITS = {"kcal/mol": 1.0, "kJ/mol": 1.0 / KJ_PER_KCAL}
FORCE_UNITS = {
    "kcal/mol/angstrom": 1.0,
    "kcal/mol/A": 1.0,
    "kJ/mol/nm": KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A,
    "kJ/mol/angstrom": 1.0 / KJ_PER_KCAL,
    "kJ/mol/A": 1.0 / KJ_PER_KCAL,
    "kcal/mol/nm": 1.0 / NM_TO_ANGSTROM,
}

UNITS = {
    "length": "angstrom",
    "energy": "kcal/mol",
    "force": "kcal/mol/angstrom",
    "time": "ps",
    "mass": "amu",
    "temperature": "K",
}


def kbt(temperature_k: float) -> float:
    """Thermal energy k_B·T in kcal/mol for a temperature in K."""
    return KB_KCAL_PER_MOL_K * float(temperature_k)


def _factor(table: dict[str, float], unit: str, what: str) -> float:
    try:
        return table[unit]
    except KeyError:
        from raycg.errors import InputError

        raise InputError(f"unknown {what} unit {unit!r}; use one of {sorted(table)}") from None


def length_factor(unit: str) -> float:
    """Factor that converts a length in ``unit`` to Å."""
    return _factor(LENGTH_UNITS, unit, "length")


def force_factor(unit: str) -> float:
    """Factor that converts a force in ``unit`` to kcal/mol/Å."""
    return _factor(FORCE_UNITS, unit, "force")


def energy_factor(unit: str) -> float:
    """Factor that converts an energy in ``unit`` to kcal/mol."""
    return _factor(ENERGY_UNITS, unit, "energy")
