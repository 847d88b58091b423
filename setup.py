"""Build glue for rr's optional C extension (everything else is in pyproject.toml).

`optional=True`: without a C compiler `pip install` still succeeds and rr uses its
pure-Python host calls (rr/native.py says which path is in use).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("rr._native", ["rr/_native.c"], optional=True,
                             extra_compile_args=["-O2"])])
