"""Backups of a desk and their restore: online, consistent copies of the journal, the
FIX session stores, the venue simulator's ledger, the vault (still encrypted), the
configs and strategy code; encrypted with age to offline keys, each record signed
(Ed25519) by the machine that makes them; kept in a directory or
an S3-compatible object store; the journal shipped in segments between full backups;
pruned grandfather-father-son (docs/dr.md)."""
