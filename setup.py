"""Build hook: compile the per-order risk gate and the market data validators to C
with mypyc.

Everything else in ``pyproject.toml``. The modules listed in
``bastion.native.COMPILED_MODULES`` are plain, fully typed Python that mypyc turns into
C extensions (the same source runs interpreted when they are not built:
``BASTION_PURE_PYTHON=1``, or no C compiler).
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

from setuptools import setup

# the list lives in bastion.native (which reports what runs compiled)
_NATIVE = runpy.run_path(str(Path(__file__).parent / "src" / "bastion" / "native.py"))
COMPILED = [_NATIVE["source_path"](module) for module in _NATIVE["COMPILED_MODULES"]]
_GROUP = "bastion_native"  # the library is ``bastion_native__mypyc`` (``native.LIBRARY``)


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
