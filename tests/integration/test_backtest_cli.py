"""`bastion backtest` end to end, as a user runs it: a subprocess, a TOML config, real files.

Covers the shared quotes-EMA workload's published figures (from the report and
recomputed from fills.csv), reproducible outputs, bad market data, a failing
strategy, and the `bastion init` scaffold working out of the box.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from decimal import Context, Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.journal.sqlite import JournalEvent
from bastion.model import events as ev
from bastion.model.enums import TERMINAL_STATUSES
from bastion.model.orders import Order

REPO_ROOT = Path(__file__).resolve().parents[2]
EMA_CROSS = REPO_ROOT / "src" / "bastion" / "scaffold" / "strategies" / "ema_cross.py"

# shared/bench/WORKLOAD.md, 100k row: every engine must match these exactly.
WORKLOAD_ORDERS = 2_898
WORKLOAD_FILLS = 2_898
WORKLOAD_POSITION = Decimal(1)
WORKLOAD_REALIZED = Decimal("-28.26")

FILLS_HEADER = [
    "ts_ns",
    "time_utc",
    "client_order_id",
    "exec_id",
    "strategy_id",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "fee",
    "liquidity",
]
OUTPUT_FILES = ("fills.csv", "equity.png", "report.txt")
BACKTEST_TIMEOUT_S = 120.0

Proc = subprocess.CompletedProcess[str]


# -- helpers -----------------------------------------------------------------------------


def bastion(*args: str | Path, cwd: Path, timeout_s: float = BACKTEST_TIMEOUT_S) -> Proc:
    """Run ``python -m bastion ARGS`` in ``cwd``; capture text output, never raise on exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bastion", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def toml_str(path: Path) -> str:
    """A TOML basic string for a path (JSON string escaping is valid TOML)."""
    return msgspec.json.encode(str(path)).decode()


def backtest_toml(
    data: Path,
    *,
    strategies: str | None = None,
    output_dir: str = "out",
    data_extra: str = "",
    extra: str = "",
) -> str:
    """A backtest config: XYZ.SIM (tick 0.01, lot 1), generous risk limits, venue defaults.

    ``strategies`` replaces the default strategy table (the packaged EmaCross 10/50).
    """
    if strategies is None:
        strategies = f"""
            [[strategies]]
            name = "ema_cross"
            path = {toml_str(EMA_CROSS)}
            class = "EmaCross"
            [strategies.params]
            instrument = "XYZ.SIM"
            fast = 10
            slow = 50
            trade_size = "1"
            """
    head = f"""
        output_dir = "{output_dir}"
        progress = false

        [[instruments]]
        id = "XYZ.SIM"
        tick_size = "0.01"
        lot_size = "1"
        """
    tail = f"""
        [risk]
        max_order_quantity = "1000000"
        max_order_notional = "1000000000"

        [[data]]
        path = {toml_str(data)}
        instrument = "XYZ.SIM"
        """
    return (
        textwrap.dedent(head)
        + textwrap.dedent(strategies)
        + textwrap.dedent(tail)
        + textwrap.dedent(data_extra)
        + textwrap.dedent(extra)
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def head_of_csv(source: Path, dest: Path, n_rows: int) -> Path:
    """The header and the first ``n_rows`` data rows of ``source``."""
    with source.open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(n_rows + 1)]
    dest.write_text("".join(lines), encoding="utf-8")
    return dest


def report_value(report: str, label: str) -> str:
    """The value printed after ``label`` on its own report line (``orders  2,898``)."""
    match = re.search(rf"^\s+{re.escape(label)}\s+(\S+)", report, re.MULTILINE)
    assert match is not None, f"no {label!r} line in the report:\n{report}"
    return match[1]


def report_count(report: str, label: str) -> int:
    return int(report_value(report, label).replace(",", ""))


def report_position(report: str, instrument_id: str) -> Decimal:
    """Signed quantity from the report's Final positions table."""
    match = re.search(rf"^\s+{re.escape(instrument_id)}\s+(\S+)\s", report, re.MULTILINE)
    assert match is not None, f"no final position for {instrument_id} in:\n{report}"
    return Decimal(match[1])


def read_fills(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == FILLS_HEADER
        return list(reader)


def net_position_and_realized(fills: list[dict[str, str]]) -> tuple[Decimal, Decimal]:
    """Average-cost netting, exact: (signed position, realized PnL gross of fees)."""
    ctx = Context(prec=60)
    position = Decimal(0)
    cost = Decimal(0)  # signed cost of the open quantity
    realized = Decimal(0)
    for fill in fills:
        sign = 1 if fill["side"] == "BUY" else -1
        qty, px = Decimal(fill["quantity"]), Decimal(fill["price"])
        if position == 0 or (position > 0) == (sign > 0):
            position += sign * qty
            cost += sign * qty * px
            continue
        closing_qty = min(qty, abs(position))
        removed = ctx.divide(cost * closing_qty, abs(position))
        proceeds = closing_qty * px if position > 0 else -closing_qty * px
        realized += proceeds - removed
        cost -= removed
        position += sign * closing_qty
        opening = qty - closing_qty
        if opening:
            position += sign * opening
            cost += sign * opening * px
        if position == 0:
            cost = Decimal(0)
    return position, realized


def error_line(stderr: str) -> str:
    """The one ``error: ...`` line on stderr (log lines may precede it)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def journal_orders(path: Path) -> tuple[dict[str, Order], list[ev.OrderTransitionRefused]]:
    """Rebuild every journaled order through the order state machine (read-only)."""
    decoder = msgspec.msgpack.Decoder(JournalEvent)
    orders: dict[str, Order] = {}
    refused: list[ev.OrderTransitionRefused] = []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT payload FROM events ORDER BY seq").fetchall()
    for (payload,) in rows:
        event = decoder.decode(payload)
        if isinstance(event, ev.OrderInitialized):
            orders[event.client_order_id] = Order(
                client_order_id=event.client_order_id,
                strategy_id=event.strategy_id,
                instrument_id=event.instrument_id,
                venue="SIM",
                side=event.side,
                order_type=event.order_type,
                quantity=event.quantity,
                price=event.price,
                time_in_force=event.time_in_force,
            )
        elif isinstance(event, ev.OrderTransitionRefused):
            refused.append(event)  # journaled instead of the refused event
        elif isinstance(event, ev.OrderEvent):
            orders[event.client_order_id].apply(event)
    return orders, refused


# -- the shared workload ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_when_ema_cross_over_100k_quotes_then_workload_figures_reproduced(
    bench_quotes_100k: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    """The packaged EmaCross over the 100k benchmark file gives the published figures."""
    config = write(tmp_path / "bt.toml", backtest_toml(bench_quotes_100k[fmt]))
    proc = bastion("backtest", config.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)

    report = (out / "report.txt").read_text(encoding="utf-8")
    assert report_count(report, "ticks processed") == 100_000
    assert report_count(report, "orders") == WORKLOAD_ORDERS
    assert report_count(report, "fills") == WORKLOAD_FILLS
    assert report_count(report, "denied") == 0
    assert report_count(report, "rejected") == 0
    assert report_position(report, "XYZ.SIM") == WORKLOAD_POSITION
    assert Decimal(report_value(report, "realized PnL")) == WORKLOAD_REALIZED
    assert Decimal(report_value(report, "fees")) == 0
    # stdout has the same report plus wall time and throughput
    assert all(line in proc.stdout for line in report.splitlines())

    fills = read_fills(out / "fills.csv")
    assert len(fills) == WORKLOAD_FILLS
    # one market order per cross, each filled at once in full at the touch
    assert len({f["client_order_id"] for f in fills}) == WORKLOAD_ORDERS
    assert len({f["exec_id"] for f in fills}) == WORKLOAD_FILLS
    assert {f["liquidity"] for f in fills} == {"TAKER"}
    assert {Decimal(f["fee"]) for f in fills} == {Decimal(0)}
    assert {(f["strategy_id"], f["instrument_id"]) for f in fills} == {("ema_cross", "XYZ.SIM")}
    quantities = [Decimal(f["quantity"]) for f in fills]
    assert quantities[0] == 1  # entry: one unit, then every flip is two
    assert set(quantities[1:]) == {Decimal(2)}
    sides = [f["side"] for f in fills]
    assert all(a != b for a, b in itertools.pairwise(sides))  # always flipping
    ts = [int(f["ts_ns"]) for f in fills]
    assert ts == sorted(ts)
    assert all(Decimal(f["price"]) % Decimal("0.01") == 0 for f in fills)

    position, realized = net_position_and_realized(fills)
    assert position == WORKLOAD_POSITION
    assert realized == WORKLOAD_REALIZED


def test_when_backtest_run_twice_then_outputs_byte_identical(
    bench_quotes_100k: dict[str, Path], tmp_path: Path
) -> None:
    """Two runs (output_dir from the config, then --out) leave byte-identical files."""
    desk = tmp_path / "desk"
    config = write(desk / "bt.toml", backtest_toml(bench_quotes_100k["parquet"], output_dir="a"))
    # run from elsewhere: output_dir is relative to the config file, --out to the cwd
    first = bastion("backtest", "desk/bt.toml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = bastion("backtest", config, "--out", "b", "--no-progress", cwd=tmp_path)
    assert second.returncode == 0, second.stderr

    dir_a, dir_b = desk / "a", tmp_path / "b"
    for name in OUTPUT_FILES:
        a, b = (dir_a / name).read_bytes(), (dir_b / name).read_bytes()
        assert a, name
        assert a == b, f"{name} differs between runs"
    assert (dir_a / "equity.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# -- bad data --------------------------------------------------------------------------


@pytest.fixture
def bad_quotes(bench_quotes_100k: dict[str, Path], tmp_path: Path) -> Path:
    """19 benchmark quotes whose line 5 (the 4th data row) has bid 'abc'."""
    path = head_of_csv(bench_quotes_100k["csv"], tmp_path / "bad_quotes.csv", 19)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    ts, _bid, *rest = lines[4].split(",")
    lines[4] = ",".join([ts, "abc", *rest])
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_when_data_row_not_numeric_then_exit_3_naming_file_line_and_column(
    bad_quotes: Path, tmp_path: Path
) -> None:
    """A non-numeric bid fails the backtest with exit 3 and says where: file, line, column."""
    write(tmp_path / "bt.toml", backtest_toml(bad_quotes))
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    line = error_line(proc.stderr)
    assert "bad_quotes.csv:5" in line
    assert "'bid'" in line
    assert "abc" in line
    assert not (tmp_path / "out").exists()


def test_when_bad_row_skipped_then_exit_0_and_report_counts_it(
    bad_quotes: Path, tmp_path: Path
) -> None:
    """With on_bad_row = "skip" the row is dropped and the report counts it by reason."""
    write(tmp_path / "bt.toml", backtest_toml(bad_quotes, data_extra='on_bad_row = "skip"\n'))
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert "Skipped data rows (1)" in report
    assert report_count(report, "ticks processed") == 18
    assert "Skipped data rows (1)" in proc.stdout


def test_when_data_file_missing_then_exit_2_naming_key_and_path(tmp_path: Path) -> None:
    """A [[data]] path that does not exist is a config error, caught before anything runs."""
    write(tmp_path / "bt.toml", backtest_toml(tmp_path / "nowhere.csv"))
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: bt.toml: key 'data[0].path': file not found")
    assert str(tmp_path / "nowhere.csv") in lines[0]
    assert proc.stdout == ""


# -- failing strategies ----------------------------------------------------------------

BOOM_STRATEGY = """
from bastion.strategy import QuoteTick, Strategy


class Boom(Strategy):
    def on_start(self) -> None:
        self.n = 0
        self.fail_at = int(self.params["fail_at"])
        self.subscribe_quotes(self.params["instrument"])

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        if self.n == self.fail_at:
            raise RuntimeError(f"boom at quote {self.n}")
"""


def two_strategies(boom: Path, on_error: str) -> str:
    return f"""
        [[strategies]]
        name = "boom"
        path = {toml_str(boom)}
        class = "Boom"
        on_error = "{on_error}"
        [strategies.params]
        instrument = "XYZ.SIM"
        fail_at = 100

        [[strategies]]
        name = "ema_cross"
        path = {toml_str(EMA_CROSS)}
        class = "EmaCross"
        [strategies.params]
        instrument = "XYZ.SIM"
        """


@pytest.mark.parametrize("on_error", ["stop", "halt"])
def test_when_strategy_raises_in_on_quote_then_backtest_completes_and_report_names_it(
    bench_quotes_100k: dict[str, Path], tmp_path: Path, on_error: str
) -> None:
    """The raising strategy is stopped and listed; the run finishes (halt: others denied)."""
    data = head_of_csv(bench_quotes_100k["csv"], tmp_path / "quotes.csv", 2_000)
    boom = write(tmp_path / "boom.py", BOOM_STRATEGY)
    write(tmp_path / "bt.toml", backtest_toml(data, strategies=two_strategies(boom, on_error)))
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "strategy_failed" in proc.stderr

    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert report_count(report, "ticks processed") == 2_000
    section = report.split("Strategy errors (1)\n", 1)
    assert len(section) == 2, report
    assert "1. boom: RuntimeError: boom at quote 100" in section[1]
    assert "ema_cross" not in section[1]

    fills = read_fills(tmp_path / "out" / "fills.csv")
    assert fills, "the other strategy kept trading"
    assert {f["strategy_id"] for f in fills} == {"ema_cross"}
    if on_error == "halt":
        assert report_count(report, "denied") > 0  # ema_cross's orders after the halt
        assert "trading_state_changed" in proc.stderr
    else:
        assert report_count(report, "denied") == 0


# -- the scaffold ------------------------------------------------------------------------


def test_when_init_then_backtest_of_the_scaffold_works_out_of_the_box(tmp_path: Path) -> None:
    """`bastion init DIR` then `bastion backtest DIR/backtest.toml` runs and writes outputs."""
    init = bastion("init", "--no-vault", "desk", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    proc = bastion("backtest", "desk/backtest.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "desk" / "backtest-out"
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
        assert f"wrote {out / name}" in proc.stdout
    report = (out / "report.txt").read_text(encoding="utf-8")
    assert report_count(report, "ticks processed") == 20_000
    assert report_count(report, "orders") > 0
    assert len(read_fills(out / "fills.csv")) == report_count(report, "fills")


# -- the documentation's example ----------------------------------------------------------

DOCS_STRATEGY_MD = REPO_ROOT / "docs" / "strategy.md"


def docs_example_strategy() -> str:
    """The first Python block under docs/strategy.md's "A complete example" heading."""
    text = DOCS_STRATEGY_MD.read_text(encoding="utf-8")
    section = text.split("## A complete example", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block in the example section"
    return match[1]


def test_when_docs_example_strategy_backtested_then_it_quotes_and_trades(
    bench_quotes_100k: dict[str, Path], tmp_path: Path
) -> None:
    """The passive market maker in docs/strategy.md runs as printed, without errors."""
    data = head_of_csv(bench_quotes_100k["csv"], tmp_path / "quotes.csv", 5_000)
    maker = write(tmp_path / "strategies" / "maker.py", docs_example_strategy())
    strategies = f"""
        [[strategies]]
        name = "maker"
        path = {toml_str(maker)}
        class = "PassiveMaker"
        [strategies.params]
        instrument = "XYZ.SIM"
        size = "1"
        edge_ticks = 1
        max_position = "5"
        """
    extra = """
        [journal]
        path = "journal.sqlite"
        """
    write(tmp_path / "bt.toml", backtest_toml(data, strategies=strategies, extra=extra))
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "order_problem" not in proc.stderr
    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert "Strategy errors" not in report
    assert report_count(report, "fills") > 0
    assert report_count(report, "denied") == 0
    assert report_count(report, "rejected") == 0
    fills = read_fills(tmp_path / "out" / "fills.csv")
    assert {f["liquidity"] for f in fills} == {"MAKER"}  # passive: it never takes
    position, _ = net_position_and_realized(fills)
    assert abs(position) <= 5
    orders, refused = journal_orders(tmp_path / "journal.sqlite")
    assert refused == []
    assert all(o.status in TERMINAL_STATUSES for o in orders.values())


# -- regressions: bugs found while writing these tests ------------------------------------

QUOTER_STRATEGY = """
from bastion.model.enums import OrderSide
from bastion.strategy import QuoteTick, Strategy


class Quoter(Strategy):
    '''Rests a buy far below the bid; at quote ``act_at`` runs the configured action.'''

    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.inst = self.instrument(self.iid)
        self.n = 0
        self.order = None
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        far = quote.bid - 50 * self.inst.tick_raw
        if self.n == 1:
            self.order = self.submit(OrderSide.BUY, self.iid, self.inst.lot_raw, far)
        elif self.n == int(self.params["act_at"]):
            action = self.params["action"]
            if action == "modify_then_cancel":
                self.modify(self.order, price=self.inst.price(far))
                self.cancel(self.order)
            elif action == "cancel_then_cancel_all":
                self.cancel(self.order)
                self.cancel_all()
"""


def quoter_backtest(tmp_path: Path, data: Path, *, action: str, act_at: int) -> str:
    quoter = write(tmp_path / "quoter.py", QUOTER_STRATEGY)
    strategies = f"""
        [[strategies]]
        name = "quoter"
        path = {toml_str(quoter)}
        class = "Quoter"
        [strategies.params]
        instrument = "XYZ.SIM"
        action = "{action}"
        act_at = {act_at}
        """
    extra = """
        [venue]
        latency_ms = 5

        [journal]
        path = "journal.sqlite"
        """
    return backtest_toml(data, strategies=strategies, extra=extra)


def test_when_venue_latency_then_orders_working_at_the_end_are_canceled(
    bench_quotes_100k: dict[str, Path], tmp_path: Path
) -> None:
    """At the end of a backtest every order reaches a terminal state, whatever the latency."""
    data = head_of_csv(bench_quotes_100k["csv"], tmp_path / "quotes.csv", 20)
    write(tmp_path / "bt.toml", quoter_backtest(tmp_path, data, action="none", act_at=0))
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    orders, _ = journal_orders(tmp_path / "journal.sqlite")
    assert len(orders) == 1
    statuses = {coid: o.status.value for coid, o in orders.items()}
    assert all(o.status in TERMINAL_STATUSES for o in orders.values()), statuses
    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert report_count(report, "canceled") == 1


def test_when_modify_then_cancel_in_one_callback_then_no_transition_refused(
    bench_quotes_100k: dict[str, Path], tmp_path: Path
) -> None:
    """modify() then cancel() of a resting order: the venue's answers all apply in order."""
    data = head_of_csv(bench_quotes_100k["csv"], tmp_path / "quotes.csv", 20)
    config = quoter_backtest(tmp_path, data, action="modify_then_cancel", act_at=5)
    write(tmp_path / "bt.toml", config)
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    orders, refused = journal_orders(tmp_path / "journal.sqlite")
    assert [o.status.value for o in orders.values()] == ["CANCELED"]
    assert [(r.status, r.event) for r in refused] == []


def test_when_cancel_all_after_cancel_then_no_second_cancel_is_sent(
    bench_quotes_100k: dict[str, Path], tmp_path: Path
) -> None:
    """cancel_all() skips orders whose cancel is already on its way."""
    data = head_of_csv(bench_quotes_100k["csv"], tmp_path / "quotes.csv", 20)
    config = quoter_backtest(tmp_path, data, action="cancel_then_cancel_all", act_at=5)
    write(tmp_path / "bt.toml", config)
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    orders, refused = journal_orders(tmp_path / "journal.sqlite")
    assert [o.status.value for o in orders.values()] == ["CANCELED"]
    assert [(r.status, r.event) for r in refused] == []


PROBE_STRATEGY = """
from bastion.strategy import QuoteTick, Strategy


class Probe(Strategy):
    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.n = 0
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        if self.n == 2 and self.params["action"] == "buy_zero":
            self.buy(self.iid, 0)

    def on_stop(self) -> None:
        self.log.info("probe_on_stop")
        if self.params["action"] == "raise_in_on_stop":
            raise RuntimeError("on_stop failed")
"""


def probe_backtest(tmp_path: Path, data: Path, action: str) -> Path:
    probe = write(tmp_path / "probe.py", PROBE_STRATEGY)
    strategies = f"""
        [[strategies]]
        name = "probe"
        path = {toml_str(probe)}
        class = "Probe"
        [strategies.params]
        instrument = "XYZ.SIM"
        action = "{action}"
        """
    return write(tmp_path / "bt.toml", backtest_toml(data, strategies=strategies))


def test_when_strategy_buys_zero_then_order_denied_not_strategy_failure(
    bench_quotes_100k: dict[str, Path], tmp_path: Path
) -> None:
    """README: a risk denial arrives as an event with a reason, never as an exception."""
    data = head_of_csv(bench_quotes_100k["csv"], tmp_path / "quotes.csv", 20)
    probe_backtest(tmp_path, data, "buy_zero")
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert "Strategy errors" not in report
    assert report_count(report, "denied") == 1


def test_when_on_stop_raises_then_on_stop_is_called_once(
    bench_quotes_100k: dict[str, Path], tmp_path: Path
) -> None:
    """on_stop is "called once when the node stops the strategy", even if it raises."""
    data = head_of_csv(bench_quotes_100k["csv"], tmp_path / "quotes.csv", 20)
    probe_backtest(tmp_path, data, "raise_in_on_stop")
    proc = bastion("backtest", "bt.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert "1. probe: on_stop: RuntimeError: on_stop failed" in report
    assert proc.stderr.count("probe_on_stop") == 1, proc.stderr
