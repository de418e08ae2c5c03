"""Chaos tests' setup: the root helpers and the integration helpers.

Non-package conftest files share the module name ``conftest``, so loading this one
replaces tests/conftest.py in ``sys.modules``; the root helpers that test modules import
with ``from conftest import ...`` are re-exported so that keeps working in any
collection order (as tests/interop/conftest.py does). tests/integration goes on
``sys.path`` so the harness can reuse ``test_paper_node``'s helpers when only
tests/chaos is collected.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_TESTS = Path(__file__).resolve().parents[1]


def _load_root_helpers() -> Any:
    spec = importlib.util.spec_from_file_location("_bastion_root_conftest", _TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_root = _load_root_helpers()
eventually = _root.eventually
shared_dir = _root.shared_dir
RunBastion = _root.RunBastion
REPO_ROOT = _root.REPO_ROOT

for _folder in (_TESTS / "integration", Path(__file__).resolve().parent):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
