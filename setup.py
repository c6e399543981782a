"""Build of the optional C extension `xtal._window` (the compiled windowed pseudo-Voigt); everything
else about the package is in pyproject.toml. ``optional=True``: without a C compiler the install
still succeeds and xtal uses the NumPy form of the same sums."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("xtal._window", ["xtal/_window.c"], optional=True)])
