"""Imports kh_kernel modules from the sources embedded in the kernel binary.

Executed by the C++ bootstrap with a global `SOURCES`: {module name: (path, is_package, source)}.
"""
import sys
from importlib.machinery import ModuleSpec


class EmbeddedImporter:
    """A meta-path finder and loader for the embedded kh_kernel package."""

    def __init__(self, sources):
        self._sources = sources

    def find_spec(self, name, path=None, target=None):
        entry = self._sources.get(name)
        if entry is None:
            return None
        return ModuleSpec(name, self, origin=entry[0], is_package=entry[1])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        path, _, source = self._sources[module.__name__]
        module.__file__ = path
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)

    def get_source(self, name):
        return self._sources[name][2]

    def is_package(self, name):
        return self._sources[name][1]


sys.meta_path.insert(0, EmbeddedImporter(SOURCES))  # noqa: F821 (set by the bootstrap)
