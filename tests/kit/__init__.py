"""The test kit: the fakes and helpers that tests share, imported as ``kit.<topic>``.

pytest puts tests/ on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test writes
``from kit.waiting import eventually``; mypy checks the kit as strictly as the product.
Test modules never import one another and conftest.py files only define fixtures:
whatever two tests share lives here (tests/test_kit_rules.py holds the rule).

=====================  ==============================================================
waiting                ``eventually`` (sync) and ``until`` (async): the one way to wait
paths                  the repository root, tests/ and the shared/ folder
venues                 ``RecordingVenue``: a venue that records what it was asked
risk_node              the risk gate on a small node (``Node``, ``Wired``), instruments
risk_kernel            a whole backtest ``Kernel`` with risk controls, and its steps
risk_config            a paper config around a ``[risk]`` section
risk_steps             orders, cancels and amends through a kernel's gate
strategies             strategy sources written into a node's strategies/ folder
fake_worker            a core whose strategy processes the test plays (``IsolatedCore``)
node_process           ``bastion`` as a child process; the node's status command
journal_reading        a node's journal read back, orders rebuilt from their events
journal_samples        one event of every journaled type; hypothesis strategies
net                    a free TCP port, whether a port listens, a relay that cuts
fix_pair               two FIX sessions back to back in memory on a fake clock
fix_link               a FIX venue adapter linked in memory to an acceptor session
fix_venue_node         a kernel with a sim venue and a linked FIX venue; a stand-in reconciler
fix_desk               the venue simulator config FIX tests share; a FIX process
fix_node_desk          a venue simulator process and a node trading with it over FIX
venuesim_desk          a venue simulator engine on a ``SimClock`` (``Desk``)
venuesim_wire          the venue simulator's account session wired to a node session
quickfix, qf_common    the QuickFIX counterparty process and the scripts' common code
chaos_harness          the chaos tests' processes, kills and journal queries
chaos_oracle           the chaos tests' oracle: journal against venue ledger
bench_data             the shared benchmark's 100k quotes, checked by sha256
=====================  ==============================================================
"""
