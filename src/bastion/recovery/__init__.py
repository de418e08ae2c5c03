"""Crash recovery: snapshots of the node's state, journal replay, and reconciliation
with the venue before any strategy trades again."""
