"""The observability plane: metrics (Prometheus), health, alert rules and notifiers.

Nothing on the order path waits on it: the trading loop hands the monitor a sample of
the node's state every ``monitoring.sample_interval_ms`` and events as they are
published; exposition, alert delivery and the dead-man's switch run on their own
threads.
"""
