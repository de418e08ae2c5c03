"""Generate ``src/bastion/fix/dictionary44.py`` from QuickFIX's ``FIX44.xml``.

The data dictionary that validates every inbound FIX 4.4 message is never written by
hand: this script reads the XML the ``quickfix`` package ships (``share/quickfix/FIX44.xml``
inside the virtual environment it is installed in) and writes it out as Python literals,
so the runtime needs neither quickfix nor an XML parser. ``tests/unit/fix`` checks that
the committed file equals this script's output.

Usage: python scripts/gen_fix44_dictionary.py [--xml PATH] [--out PATH] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "bastion" / "fix" / "dictionary44.py"

HEADER = '''\
"""The FIX 4.4 data dictionary: GENERATED from QuickFIX's FIX44.xml, do not edit.

Regenerate with ``python scripts/gen_fix44_dictionary.py`` (it finds
``share/quickfix/FIX44.xml`` in the environment quickfix is installed in).
Source sha256: {sha256}

- ``FIELDS``: tag -> (name, type, enumerated values; empty: any value of the type).
- ``HEADER``, ``TRAILER``, ``COMPONENTS[name]``, ``MESSAGES[msg_type][2]``: members in
  order, each ``(tag, required)`` for a field, ``(name, required)`` for a component,
  or ``(tag, required, members)`` for a repeating group (``tag`` its NumInGroup
  field; the first member is the group's delimiter).
- ``MESSAGES``: MsgType -> (name, "admin" or "app", members).
"""

# fmt: off
# ruff: noqa: E501

from __future__ import annotations

from typing import TypeAlias

Member: TypeAlias = "tuple[int, bool] | tuple[str, bool] | tuple[int, bool, Members]"
Members: TypeAlias = "tuple[Member, ...]"
'''


def default_xml() -> Path:
    """FIX44.xml of the quickfix installed in this interpreter's environment."""
    for base in (sysconfig.get_paths()["data"], sys.prefix, sys.base_prefix):
        path = Path(base) / "share" / "quickfix" / "FIX44.xml"
        if path.exists():
            return path
    raise SystemExit("FIX44.xml not found: install quickfix (pip) or pass --xml")


def _members(node: ET.Element, tags: dict[str, int]) -> str:
    out = []
    for child in node:
        required = child.get("required") == "Y"
        name = child.get("name", "")
        if child.tag == "field":
            out.append(f"({tags[name]}, {required})")
        elif child.tag == "component":
            out.append(f"({name!r}, {required})")
        elif child.tag == "group":
            out.append(f"({tags[name]}, {required}, {_members(child, tags)})")
        else:
            raise SystemExit(f"unexpected element <{child.tag}> in {node.get('name')}")
    return "(" + "".join(m + ", " for m in out) + ")"


def generate(xml: bytes) -> str:
    root = ET.fromstring(xml)
    fields_node = root.find("fields")
    assert fields_node is not None
    tags = {f.get("name", ""): int(f.get("number", "")) for f in fields_node}
    lines = [HEADER.format(sha256=hashlib.sha256(xml).hexdigest())]
    lines.append("FIELDS: dict[int, tuple[str, str, tuple[str, ...]]] = {")
    for f in sorted(fields_node, key=lambda f: int(f.get("number", ""))):
        values = tuple(v.get("enum", "") for v in f.findall("value"))
        lines.append(
            f"    {int(f.get('number', ''))}: ({f.get('name')!r}, {f.get('type')!r}, {values!r}),"
        )
    lines.append("}")
    for section in ("header", "trailer"):
        node = root.find(section)
        assert node is not None
        lines.append(f"{section.upper()}: Members = {_members(node, tags)}")
    lines.append("COMPONENTS: dict[str, Members] = {")
    components = root.find("components")
    assert components is not None
    for c in components:
        lines.append(f"    {c.get('name')!r}: {_members(c, tags)},")
    lines.append("}")
    lines.append("MESSAGES: dict[str, tuple[str, str, Members]] = {")
    messages = root.find("messages")
    assert messages is not None
    for m in messages:
        spec = f"({m.get('name')!r}, {m.get('msgcat')!r}, {_members(m, tags)})"
        lines.append(f"    {m.get('msgtype')!r}: {spec},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xml", type=Path, help="FIX44.xml (default: quickfix's)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if --out differs")
    args = parser.parse_args()
    text = generate((args.xml or default_xml()).read_bytes())
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{args.out} differs: regenerate it")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
