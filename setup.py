"""The C extension; everything else about the package is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = cythonize(
    [
        Extension(
            "trustplane.discovery.parsers._tokens",
            ["src/trustplane/discovery/parsers/_tokens.pyx"],
            extra_compile_args=["-O3"],
        )
    ],
    compiler_directives={"language_level": "3"},
)
for extension in extensions:
    # No compiler: the install goes on without it (parsers.native.built() is False; CI fails then).
    extension.optional = True

setup(ext_modules=extensions)
