"""The venue simulator process: a FIX 4.4 acceptor in front of ``VenueSimEngine``.

One FIX session per account (our CompID to the account's CompID), authenticated
by Logon Username (553) and Password (554). Order messages (D, F, G, H, AF) and
RequestForPositions (AN) are validated into venue requests; reports (8, 9, and AO
then AP for positions) go back on the account's session. A
report produced while the account is disconnected (a resting order filling, a
cancel-on-disconnect) is stored with its sequence number and reaches the node
through its ResendRequest after it logs on again. Market data comes from the
configured synthetic feeds or recorded files, drives matching, and is published
to each subscribed session (V → W snapshot, then X on every change). A session whose
V asks for Trade entries (269=2) also gets each match of the venue (any account's)
as a trade print, X with 269=2, and the last one in its W snapshot.

In echo mode (``mode = "echo"``) every application message goes back as it came, a
reflector for certification tests; the session options ``reset_on_logon``,
``reset_on_logout`` and ``reset_on_disconnect`` start sequence numbers again at 1.

With ``[monitoring]`` the simulator serves its own metrics and health over HTTP
(``bastion.venue_server.monitoring``).

Cancel on disconnect: when an account's session drops, its open orders are canceled
if the simulator's ``cancel_on_disconnect`` is set, or if that session's Logon asked
for it with CancelOrdersOnDisconnect (8013) Y or S (both mean the account's orders:
one session per account). 8013=N or absent leaves them working; any other value
refuses the Logon.

Fencing (``bastion.venue_server.fencing``, the simulator's ``fencing``): a Logon with
FencingEpoch (8014) older than the session's highest is refused, a newer or equal one
takes the session over, and the orders of a fenced session are checked for the epoch
their ClOrdID carries.

Read-only sessions (``[[read_only_sessions]]``, ``bastion.venue_server.read_only``): a
FIX session of their own each, in the same store and with the same session options, on
one account: its status, mass status and positions queries are answered on it alone
(``replying_to``), its orders refused; never fenced, and sent none of the account's
reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import structlog

from bastion.clock import LiveClock
from bastion.config import resolve_path
from bastion.data import SyntheticQuoteFeed
from bastion.data.config import ReplaySourceConfig, SyntheticFeedConfig
from bastion.fix.admission import AccessRule
from bastion.fix.codec import FixMessage
from bastion.fix.gate import OutputGate
from bastion.fix.rejects import BusinessReject
from bastion.fix.session import FixSession, SessionSettings, SessionState
from bastion.fix.store import SqliteSessionStore
from bastion.fix.transport import FixAcceptor
from bastion.fix.validation import ENVELOPE_TAGS
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument
from bastion.storage.keys import resolve_key
from bastion.tasks import TaskManager
from bastion.vault.refs import Secret, SecretSource
from bastion.venue_server._session_app import SessionApp, SessionHost
from bastion.venue_server.config import AccountConfig, SessionLogonConfig, VenueSimConfig
from bastion.venue_server.engine import VenueSimEngine
from bastion.venue_server.fencing import FENCED_REQUESTS, VenueFence, logon_epoch
from bastion.venue_server.fixmap import (
    ORDER_MSG_TYPES,
    market_data_incremental,
    market_data_trade,
    parse_request,
    report_to_fix,
)
from bastion.venue_server.ledger import VenueLedger
from bastion.venue_server.messages import ExecReport, QuoteUpdate, Report, TradeUpdate
from bastion.venue_server.monitoring import VenueSimMonitor
from bastion.venue_server.read_only import ReadOnlySession
from bastion.venues.fix.config import CANCEL_ORDERS_ON_DISCONNECT

log = structlog.get_logger("bastion.venue_server")

_COD_VALUES = {"Y": True, "S": True, "N": False}


class _AccountSession(SessionApp):
    """The FIX application of one account's session."""

    def __init__(self, server: SessionHost, account: AccountConfig, password: Secret) -> None:
        super().__init__(server, account.username, password)
        self.account = account
        self.cancel_on_disconnect = False
        """Asked for by the current Logon (8013=Y); the venue-wide setting applies too."""
        self._cod_asked = False
        self.fenced = False
        """The current connection's Logon carried FencingEpoch (8014): its orders are checked."""
        self._fence_asked = False

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        """Check the credentials, and the Logon's CancelOrdersOnDisconnect (8013)."""
        refusal = self.credentials_refusal(logon)
        if refusal is not None:
            return refusal
        cod = _COD_VALUES.get(logon.get(CANCEL_ORDERS_ON_DISCONNECT) or "N")
        if cod is None:
            return "CancelOrdersOnDisconnect (8013) must be Y, S or N"
        self._cod_asked = cod
        try:  # refused, if malformed, by the fence (the acceptor's gate) before this
            self._fence_asked = logon_epoch(logon) is not None
        except ValueError:
            self._fence_asked = False
        return None

    def on_logon(self, session: FixSession) -> None:
        self.cancel_on_disconnect = self._cod_asked
        self.fenced = self._fence_asked
        venue_wide = self.server.config.cancel_on_disconnect
        log.info(
            "account_logged_on",
            account=self.account.name,
            cancel_on_disconnect=self.cancel_on_disconnect or venue_wide,
        )

    def on_logout(self, session: FixSession, reason: str) -> None:
        self.clear_subscriptions()
        asked, self.cancel_on_disconnect = self.cancel_on_disconnect, False
        self.fenced = False
        canceled = 0
        if self.server.config.cancel_on_disconnect or asked:
            canceled = self.server.engine.cancel_all(self.account.name, "cancel on disconnect")
            self.server.counters["canceled_on_disconnect"] += canceled
        if canceled:
            log.warning(
                "cancel_on_disconnect",
                account=self.account.name,
                canceled=canceled,
                asked_by="logon 8013" if asked else "venue config",
            )
        # logged after the cancels: a reader of this line sees the ledger with them
        log.info("account_logged_out", account=self.account.name, reason=reason)

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        msg_type = message.msg_type
        if self.server.config.mode == "echo" and msg_type not in ("3", "j"):
            # the reflector: the message goes back as it came, in a header of ours
            session.send(
                FixMessage((t, v) for t, v in message.fields if t not in ENVELOPE_TAGS or t == 35)
            )
            return
        if msg_type in ORDER_MSG_TYPES:
            if msg_type == "D":
                self.server.counters["orders_received"] += 1
            if msg_type == "AN" and message.get(1) == self.account.comp_id:
                # Account (1) is required in AN: a node with no account configured names
                # its session's (one account per session)
                message.set(1, self.account.name)
            request = parse_request(message)
            if isinstance(request, FENCED_REQUESTS):
                refusal = self.server.fence.check(session, self.fenced, request)
                if refusal is not None:
                    self.server.engine.refuse(self.account.name, request, refusal)
                    return
            self.server.engine.handle(self.account.name, request)
        elif msg_type == "V":
            self.on_market_data_request(session, message)
        elif msg_type in ("3", "j"):
            log.warning("account_reject_received", account=self.account.name, text=message.get(58))
        else:
            raise BusinessReject(3, f"unsupported message type {msg_type}")


class VenueSimServer:
    """Everything of one simulator process, wired."""

    def __init__(
        self, config: VenueSimConfig, base_dir: Path, *, secrets: SecretSource | None = None
    ) -> None:
        self.config = config
        self.base_dir = base_dir
        self.clock = LiveClock()
        self.instruments: dict[str, Instrument] = {
            i.id: i.to_instrument() for i in config.instruments
        }
        self.last_quotes: dict[str, QuoteUpdate] = {}
        self.last_trades: dict[str, TradeUpdate] = {}
        ledger_key = resolve_key(config.ledger_encryption_key, "ledger_encryption_key", secrets)
        store_key = resolve_key(config.store_encryption_key, "store_encryption_key", secrets)
        self.ledger = VenueLedger(
            resolve_path(base_dir, config.ledger_path), encryption_key=ledger_key
        )
        self._engine: VenueSimEngine | None = None
        self.gate = OutputGate()  # every session's output waits for the ledger's commit
        self._store_key = store_key
        self._store_path = resolve_path(base_dir, config.session_store_path)
        self.apps: dict[str, _AccountSession] = {}
        """The accounts' sessions' applications, by account name."""
        self.read_only: dict[str, ReadOnlySession] = {}
        """The read-only sessions' applications, by their name."""
        self._reply_to: tuple[str, FixSession] | None = None
        self._sessions: dict[tuple[str, str], FixSession] = {}
        self._access: dict[tuple[str, str], AccessRule] = {}
        session_accounts: dict[str, str] = {}  # an account's session key -> its name
        for n, account in enumerate(config.accounts):
            key = f"accounts[{n}]"
            app = _AccountSession(self, account, account.resolve_password(key, secrets))
            session_accounts[self._add_session(app, account, key).settings.key] = account.name
            self.apps[account.name] = app
        for n, read_only in enumerate(config.read_only_sessions):
            key = f"read_only_sessions[{n}]"
            ro_app = ReadOnlySession(self, read_only, read_only.resolve_password(key, secrets))
            self._add_session(ro_app, read_only, key)
            self.read_only[read_only.name] = ro_app
        self.counters: Counter[str] = Counter()
        self.fence = VenueFence(
            config.fencing,
            ledger=self.ledger,
            clock=self.clock,
            accounts=session_accounts,
            counters=self.counters,
        )
        self.acceptor = FixAcceptor(
            self._sessions,
            config.host,
            config.port,
            limits=config.limits,
            ssl_context=None
            if config.tls is None
            else config.tls.context(base_dir, "tls", secrets=secrets),
            access=self._access,
            gate=None if config.fencing == "off" else self.fence,
            clock=self.clock,
        )
        self.tasks = TaskManager(on_crash=self._on_task_crash)
        self.stop_requested = asyncio.Event()
        self.exit_code = 0
        self.port = config.port

    def _add_session(
        self, app: _AccountSession | ReadOnlySession, logon: SessionLogonConfig, key: str
    ) -> FixSession:
        """The FIX session of ``app`` (our CompID to ``logon.comp_id``), in the session
        store, with the simulator's session options and ``logon``'s access rule."""
        config = self.config
        settings = SessionSettings(
            sender_comp_id=config.comp_id,
            target_comp_id=logon.comp_id,
            max_sending_time_skew_s=config.max_sending_time_skew_s,
            reset_on_logon=config.reset_on_logon,
            reset_on_logout=config.reset_on_logout,
            reset_on_disconnect=config.reset_on_disconnect,
            validation=config.validation,
        )
        store = SqliteSessionStore(
            self._store_path,
            settings.key,
            now_ns=self.clock.timestamp_ns(),
            encryption_key=self._store_key,
        )
        session = FixSession(settings, store, app, clock=self.clock, gate=self.gate)
        session.unit_of_work = self.ledger.batch  # reports leave after the ledger commits
        app.session = session
        self._sessions[(config.comp_id, logon.comp_id)] = session
        self._access[(config.comp_id, logon.comp_id)] = logon.access_rule(key)
        return session

    def _apps(self) -> list[SessionApp]:
        """Every session's application: the accounts', then the read-only ones."""
        return [*self.apps.values(), *self.read_only.values()]

    @property
    def engine(self) -> VenueSimEngine:
        if self._engine is None:
            raise RuntimeError("the venue simulator is not running")
        return self._engine

    def _start_engine(self) -> None:
        """Inside the running loop: restoring DAY orders sets timers on the live clock, and
        restoring may report (orders that cannot rest are canceled) to sessions that exist."""
        self._engine = VenueSimEngine(
            instruments=self.instruments,
            sim_config=self.config.matching,
            ledger=self.ledger,
            clock=self.clock,
            on_report=self._on_report,
            on_trade=self._on_trade,
        )

    @contextlib.contextmanager
    def replying_to(self, account: str, session: FixSession) -> Iterator[None]:
        """The engine's reports for ``account`` made inside go to ``session`` (a read-only
        session's query or refusal), not to the account's session. Only around a call
        that reports before it returns (``VenueSimEngine``: queries and ``refuse``)."""
        if self._reply_to is not None:
            raise RuntimeError("replying_to is not reentrant")
        self._reply_to = (account, session)
        try:
            yield
        finally:
            self._reply_to = None

    def _on_report(self, account: str, report: Report) -> None:
        reply_to = self._reply_to
        if reply_to is not None and reply_to[0] == account:
            reply_to[1].send(report_to_fix(report))
            return
        if isinstance(report, ExecReport) and report.exec_type == "F":
            self.counters["fills"] += 1
        session = self.apps[account].session
        assert session is not None
        session.send(report_to_fix(report))

    def _on_trade(self, trade: TradeUpdate) -> None:
        """A match: a trade print to every session subscribed to the symbol's trades."""
        self.last_trades[trade.symbol] = trade
        for app in self._apps():
            req_id = app.subscriptions.get(trade.symbol)
            if req_id is not None and trade.symbol in app.trade_subscriptions and app.publishing:
                assert app.session is not None
                app.session.send(market_data_trade(req_id, trade))

    def _on_task_crash(self, name: str, error: BaseException) -> None:
        self.exit_code = 1
        self.stop_requested.set()

    @contextlib.contextmanager
    def _committing(self) -> Iterator[None]:
        """Ledger and session stores committed together, then the reports written."""
        store = next(iter(self.apps.values())).session
        assert store is not None
        with store.batch():
            yield

    def _session_states(self) -> list[SessionState]:
        """Every session's state, the read-only ones' too."""
        return [app.session.state for app in self._apps() if app.session is not None]

    def _resting(self) -> int | None:
        return None if self._engine is None else len(self._engine.open_orders())

    def on_quote(self, quote: QuoteTick) -> None:
        self.counters["quotes"] += 1
        with self._committing():
            update = self.engine.on_quote(quote)
        if update is None:
            return
        self.last_quotes[update.symbol] = update
        for app in self._apps():
            req_id = app.subscriptions.get(update.symbol)
            if req_id is not None and app.publishing:
                assert app.session is not None
                app.session.send(market_data_incremental(req_id, update))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        monitor: VenueSimMonitor | None = None
        monitoring = self.config.monitoring
        if monitoring is not None and monitoring.enabled:
            monitor = VenueSimMonitor(
                monitoring,
                clock=self.clock,
                sessions=self._session_states,
                counters=self.counters,
                resting=self._resting,
                acceptor=self.acceptor,
            )
            monitor.bind()  # before anything starts: an address it cannot take stops it
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)
        try:
            with self._committing():
                self._start_engine()
            if monitor is not None:
                monitor.start()
            self.port = await self.acceptor.start()
            if monitor is not None:
                monitor.listening = True
            log.info(
                "venue_sim_listening",
                host=self.config.host,
                port=self.port,
                tls=self.config.tls is not None,
                comp_id=self.config.comp_id,
                accounts=[a.name for a in self.config.accounts],
                read_only_sessions=list(self.read_only),
                open_orders=len(self.engine.open_orders()),
            )
            for feed in self.config.feeds:
                self.tasks.spawn(f"feed-{feed.instrument}", self._synthetic(feed))
            for n, source in enumerate(self.config.replay):
                self.tasks.spawn(f"replay-{n}", self._replay(source))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.run_for_s):
                    await self.stop_requested.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.tasks.cancel_all()
            if monitor is not None:
                await monitor.stop()
            await self.acceptor.stop()
            for app in self._apps():
                if app.session is not None:
                    app.session.store.close()
            self.ledger.close()
        log.info("venue_sim_stopped", exit_code=self.exit_code)
        return self.exit_code

    async def _synthetic(self, feed_config: SyntheticFeedConfig) -> None:
        instrument = self.instruments[feed_config.instrument]
        feed = SyntheticQuoteFeed(instrument, feed_config, self.clock.timestamp_ns())
        interval_s = feed_config.interval_ms / 1000
        next_at = self.clock.monotonic_s()
        while True:
            self.on_quote(feed.next_quote(self.clock.timestamp_ns()))
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - self.clock.monotonic_s()))

    async def _replay(self, source: ReplaySourceConfig) -> None:
        from bastion.data.replay import replay_from_config  # numpy, pyarrow: on use

        replay = replay_from_config(
            source, self.instruments[source.instrument], base_dir=self.base_dir
        )
        first_ts: int | None = None
        wall0 = self.clock.monotonic_s()
        for event in replay:
            if not isinstance(event, QuoteTick):
                continue
            if first_ts is None:
                first_ts = event.ts_ns
            delay = wall0 + (event.ts_ns - first_ts) / 1e9 - self.clock.monotonic_s()
            if delay > 0:
                await asyncio.sleep(delay)
            self.on_quote(
                QuoteTick(
                    event.instrument_id,
                    self.clock.timestamp_ns(),
                    event.bid,
                    event.ask,
                    event.bid_size,
                    event.ask_size,
                )
            )
        log.info("venue_sim_replay_done", instrument=source.instrument)


def run_venue_sim(
    config: VenueSimConfig, *, base_dir: Path, secrets: SecretSource | None = None
) -> int:
    """Run the simulator until a signal or ``run_for_s``; ``secrets``: where the
    accounts' ``secret:NAME`` passwords come from (``bastion.vault.config``)."""
    return asyncio.run(VenueSimServer(config, base_dir, secrets=secrets).run())
