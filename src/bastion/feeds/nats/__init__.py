"""Market data over NATS: feed handlers publish validated quotes, nodes subscribe.

- ``wire``: the subjects and the versioned msgpack message;
- ``config``: the NATS connection settings and the node's ``kind = "nats"`` feed;
- ``client``: a connection from those settings (vault credentials, TLS, reconnects);
- ``feed``: the node's side, a ``Feed`` that checks each message and delivers quotes;
- ``handler``: the ``bastion feed`` process, a source, the validators, a publisher.

Layout and guarantees: docs/feeds.md ("Feed handlers on NATS").
"""
