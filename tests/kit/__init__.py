"""The test kit: the fakes and helpers that tests share, imported as ``kit.<topic>``.

pytest puts tests/ on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test writes
``from kit.waiting import eventually``. Test modules never import one another, and
conftest.py files only define fixtures: whatever two tests share lives here, one module
per topic (tests/test_kit_rules.py holds the rule).
"""

from __future__ import annotations
