"""Map the user's top-level folders onto one import namespace.

The repository keeps `connector/`, `encoders/`, `plugins/` and `ops/` at the top level (the
user's layout), but `ops` and `plugins` are taken on PyPI, so each folder is installed as a
subpackage of `vidsearch` (`vidsearch.ops`, ...). setuptools cannot express "prefix every
package found under these folders" in pyproject.toml alone, hence this small file.
"""

from setuptools import find_packages, setup

ROOTS = ("core", "connector", "encoders", "plugins", "ops")

packages = [f"vidsearch.{pkg}" for pkg in find_packages(include=[f"{r}*" for r in ROOTS]) if pkg.split(".")[0] in ROOTS]

setup(
    packages=packages,
    package_dir={f"vidsearch.{root}": root for root in ROOTS},
)
