"""Build hook: compile the risk gate's per-order path to C with mypyc.

Everything else in ``pyproject.toml``. The modules listed in ``COMPILED`` are plain,
fully typed Python that mypyc turns into C extensions (the same source runs
interpreted when they are not built: ``BASTION_PURE_PYTHON=1``, or no C compiler).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import setup

# the list lives in bastion.risk.native (which reports what runs compiled)
_NATIVE = Path(__file__).parent / "src" / "bastion" / "risk" / "native.py"
_NAMES = ast.literal_eval(
    next(
        node.value
        for node in ast.parse(_NATIVE.read_text()).body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED_MODULES"
    )
)
COMPILED = [f"src/bastion/risk/{name}.py" for name in _NAMES]
_GROUP = "bastion_risk"  # the library is ``bastion_risk__mypyc`` (``native.LIBRARY``)


def _ext_modules() -> list[object]:
    if os.environ.get("BASTION_PURE_PYTHON"):
        return []
    from mypyc.build import mypycify

    extensions = mypycify(
        ["--config-file=pyproject.toml", *COMPILED], opt_level="3", group_name=_GROUP
    )
    for extension in extensions:  # a failed C build installs the interpreted modules
        extension.optional = True
    return list(extensions)


setup(ext_modules=_ext_modules())
