"""The list of compiled modules (``bastion.native``): each names a source file, and a
change to any of them rebuilds."""

from __future__ import annotations

from pathlib import Path

import bastion
from bastion import native
from bastion.feeds.validation import rules
from bastion.risk import gate

ROOT = Path(bastion.__file__).resolve().parents[2]


def test_when_listed_compiled_then_the_module_has_a_source_that_triggers_a_rebuild() -> None:
    """Every listed module's source exists and is one of the build's inputs."""
    inputs = set(native.build_inputs(ROOT))
    for module in native.COMPILED_MODULES:
        source = ROOT / native.source_path(module)
        assert source.is_file(), module
        assert source in inputs, module
    assert ROOT / "setup.py" in inputs and ROOT / "src/bastion/native.py" in inputs


def test_when_a_package_is_asked_then_compiled_says_what_python_imported() -> None:
    """``compiled(package)`` is whether its listed modules were imported as extensions."""
    assert native.compiled("bastion.feeds.validation") == (Path(rules.__file__).suffix != ".py")
    assert native.compiled("bastion.risk") == (Path(gate.__file__).suffix != ".py")
