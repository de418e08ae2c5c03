"""The chaos tests take no fixtures of their own: their harness is ``kit.chaos_harness``
and their oracle ``kit.chaos_oracle``."""
