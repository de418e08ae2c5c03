"""Alert rules and their engine: conditions on the node's metrics and journal events
become alerts that fire once, repeat while active, escalate while unacknowledged and
resolve when they clear; notifications go out through ``bastion.monitor.notify``.

- ``config``: ``[[alerts]]`` and ``[[alert_routes]]`` as written;
- ``rules``: the built-in rules and the resolved ``AlertRule`` s;
- ``engine``: ``AlertEngine``, on the trading loop (``alert``: an active alert, a
  silence);
- ``book``: the alerts firing and the silences running as journaled, which recovery
  and the snapshot restore; ``restart``: what the engine takes over from them at start;
- ``node``: the engine, its notifier and the dead-man's switch wired for a node.
"""
