"""The run manifest: what a node ran (bastion's version, the config's and every
strategy file's SHA-256, the desk's git commit and whether its tree is dirty), taken at
every start and journaled as a ``RunManifest``; read back and compared by
``bastion manifest show|diff``."""

from bastion.manifest.collect import GitState, collect_manifest, git_state
from bastion.manifest.compare import diff_manifests, read_manifests

__all__ = ["GitState", "collect_manifest", "diff_manifests", "git_state", "read_manifests"]
