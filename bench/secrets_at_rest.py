#!/usr/bin/env python3
"""What the secrets and encryption at rest cost. Prints one JSON line.

- ``unlock_s``: one vault unlock at the default Argon2id cost (time 3, 256 MiB,
  parallelism 2), the median of ``--unlocks``;
- ``journal_events_per_s_plain`` / ``_encrypted``: the journal's group-commit
  throughput (``bench/journal.py``), plaintext vs encrypted with a keyed chain;
- ``tick_to_order_p99_us_plain`` / ``_encrypted`` and ``tick_to_order_p99_ratio``
  (encrypted / plain): ``bench/tick_to_order.py`` without and with ``--encrypt``, run
  alternately ``--pairs`` times, medians;
- ``fix_roundtrip_p50_us_plain`` / ``_encrypted``: ``bench/fix_roundtrip.py``
  without and with ``--encrypt-stores`` (simulator ledger and session stores, client
  store), alternated ``--fix-pairs`` times, medians.

Each bench runs as its own process, as it does alone.

    python bench/secrets_at_rest.py [--quick] [--pairs 3] [--fix-pairs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def _bench(name: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} {' '.join(args)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _unlock_s(runs: int) -> float:
    from bastion.clock import LiveClock
    from bastion.vault.vault import KdfParams, Vault

    passphrase = "bench-only-passphrase"
    times = []
    with tempfile.TemporaryDirectory(prefix="bastion-secrets-") as tmp:
        path = Path(tmp) / "vault.bastion"
        Vault.create(path, passphrase, clock=LiveClock(), kdf=KdfParams()).ensure_key("k/a")
        for _ in range(runs):
            started = time.perf_counter()
            Vault.open(path, passphrase, clock=LiveClock())
            times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def _pairs(n: int, name: str, plain: list[str], encrypted: list[str], key: str) -> list[float]:
    """Medians of ``key`` over ``n`` alternated runs: [plain, encrypted]."""
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        runs[0].append(float(_bench(name, *plain)[key]))
        runs[1].append(float(_bench(name, *encrypted)[key]))
    return [round(statistics.median(runs[0]), 2), round(statistics.median(runs[1]), 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    parser.add_argument("--unlocks", type=int, default=5, help="vault unlocks timed")
    parser.add_argument("--pairs", type=int, default=3, help="tick-to-order plain/encrypted pairs")
    parser.add_argument("--fix-pairs", type=int, default=2, help="FIX round trip pairs")
    args = parser.parse_args()
    journal = ["--n-group", "100000", "--n-fsync-each", "200"]
    t2o: list[str] = []
    fix = ["--orders", "2000", "--seconds", "2"]
    if args.quick:
        args.unlocks, args.pairs, args.fix_pairs = 1, 1, 1
        journal = ["--n-group", "2000", "--n-fsync-each", "20"]
        t2o = ["--quick"]
        fix = ["--orders", "100", "--seconds", "0.3"]

    result: dict[str, Any] = {"bench": "secrets", "unlock_s": _unlock_s(args.unlocks)}
    plain_j = _bench("journal.py", *journal)["group_events_per_s"]
    encrypted_j = _bench("journal.py", *journal, "--encrypt")["group_events_per_s"]
    result["journal_events_per_s_plain"] = plain_j
    result["journal_events_per_s_encrypted"] = encrypted_j
    p99 = _pairs(args.pairs, "tick_to_order.py", t2o, [*t2o, "--encrypt"], "p99_us")
    result["tick_to_order_p99_us_plain"], result["tick_to_order_p99_us_encrypted"] = p99
    result["tick_to_order_p99_ratio"] = round(p99[1] / p99[0], 3)
    enc = [*fix, "--encrypt-stores"]
    p50 = _pairs(args.fix_pairs, "fix_roundtrip.py", fix, enc, "p50_us")
    result["fix_roundtrip_p50_us_plain"], result["fix_roundtrip_p50_us_encrypted"] = p50
    result["pairs"], result["fix_pairs"] = args.pairs, args.fix_pairs
    result["python"] = sys.version.split()[0]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
