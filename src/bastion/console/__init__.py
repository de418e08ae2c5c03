"""The web console: a separate process (``bastion console``) serving the console's
page and JSON API over HTTPS only, watching nodes through their control sockets.

- ``config``: ``console.toml`` (``ConsoleConfig``), the users key file;
- ``guards``: the ASGI layers in front of every route (security headers, IP
  allowlist, request shape: method override, path tricks, body size, JSON only);
- ``sessions``: server-side sessions, expiry, rotation, CSRF; ``ratelimit``: the
  per-source bound on sign-in attempts;
- ``state``: the parts wired together and the gate every signed-in route passes;
- ``auth``: sign-in, sign-out, step-up, ``/api/me``;
- ``actions``: the one table of routes to role-matrix commands and node requests;
  ``api``: the node routes (views, equity, audit, actions, live updates);
- ``client``: the node's control socket, on an operator's behalf; ``poller``: one
  ``view`` per node per interval, fanned out to live-update streams; ``recorder``:
  sign-in outcomes sent to every node's journal;
- ``app``: the Starlette app; ``server``: uvicorn with TLS.

The single-page app itself is ``static/`` (served as it is). docs/console.md says how
to run it, docs/security.md ("Console") what each control protects.
"""
