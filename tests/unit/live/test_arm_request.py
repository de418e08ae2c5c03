"""Four-eyes arming: only an enabled admin asks or approves; a request is approved once,
by another admin (name and uid), within its window, for the config and node it names,
and only as the live vault's key made it. The arming admin is the account that ran
sudo, else the real uid. Each admin steps up with a fresh TOTP code; a refusal names
the operator and why, never the code."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from bastion.clock import SimClock
from bastion.errors import NotArmed
from bastion.live.arm_request import (
    ArmRequest,
    ArmRequestFile,
    approve,
    arming_admin,
    invoking_uid,
    new_request,
    read_request,
    request_path,
    require_step_up,
    write_request,
)
from bastion.security.roles import Role
from bastion.security.store import UserStore
from bastion.security.users import User
from kit.users import PASSWORD, STEP_NS, code, enrolled, store

KEY = bytes(range(32))
NODE = "live-1"
SHA = "ab" * 32
T0 = 1_767_225_600_000_000_000
S = 1_000_000_000


def request(**changes: object) -> ArmRequest:
    made = new_request(
        node_id=NODE,
        config_sha256=SHA,
        requested_by="ada",
        requested_uid=2005,
        why="go live",
        valid_s=300,
        now_ns=T0,
        window_s=900,
    )
    return msgspec.structs.replace(made, **changes)


def stored(tmp_path: Path, made: ArmRequest | None = None, key: bytes = KEY) -> ArmRequestFile:
    path = request_path(tmp_path / "journal.sqlite")
    write_request(path, made or request(), key)
    return read_request(path)


def approving(found: ArmRequestFile, **changes: object) -> ArmRequest:
    fields: dict[str, object] = {
        "key": KEY,
        "request_id": found.request.request_id,
        "approver": "abe",
        "approver_uid": 2006,
        "node_id": NODE,
        "config_sha256": SHA,
        "now_ns": T0 + 899 * S,
    }
    fields.update(changes)
    return approve(found, **fields)  # type: ignore[arg-type]


def user(roles: tuple[Role, ...], *, disabled: bool = False) -> User:
    return User(
        name="ada",
        roles=roles,
        strategies=(),
        os_uid=2005,
        disabled=disabled,
        mfa_enrolled=True,
        failed_logins=0,
        locked_until_ns=0,
        last_login_ns=None,
        created_ns=T0,
        changed_ns=T0,
    )


def test_when_a_second_admin_approves_in_time_then_the_request_is_returned(
    tmp_path: Path,
) -> None:
    """abe (2006) approves ada's (2005) request one second before it expires; the file
    is 0600."""
    found = stored(tmp_path)
    assert approving(found) == found.request
    assert (request_path(tmp_path / "journal.sqlite").stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"approver": "ada", "approver_uid": 2006}, "ada asked for arming"),
        ({"approver_uid": 2005}, "abe asked for arming|may not approve it"),
        ({"now_ns": T0 + 900 * S}, "expired 0 s ago"),
        ({"request_id": "000000000000"}, "not 000000000000"),
        ({"config_sha256": "cd" * 32}, "another config or node"),
        ({"node_id": "live-2"}, "another config or node"),
        ({"key": bytes(32)}, "MAC does not match"),
    ],
    ids=["self-by-name", "self-by-uid", "expired", "replaced", "config", "node", "key"],
)
def test_when_the_approval_is_not_a_second_admins_in_time_then_refused(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(NotArmed, match=message):
        approving(stored(tmp_path), **changes)


def test_when_the_request_is_edited_then_the_mac_fails(tmp_path: Path) -> None:
    """Another requester or a longer validity written into the file: refused."""
    path = request_path(tmp_path / "journal.sqlite")
    write_request(path, request(), KEY)
    found = read_request(path)
    for edit in ({"requested_by": "eve"}, {"valid_s": 86_400.0}, {"expires_ns": T0 * 2}):
        forged = ArmRequestFile(
            request=msgspec.structs.replace(found.request, **edit), mac=found.mac
        )
        with pytest.raises(NotArmed, match="MAC does not match"):
            approving(forged)


def test_when_no_request_is_pending_then_refused_saying_how_to_ask(tmp_path: Path) -> None:
    path = request_path(tmp_path / "journal.sqlite")
    with pytest.raises(NotArmed, match="no arming request is pending"):
        read_request(path)
    path.write_text("{}")
    with pytest.raises(NotArmed, match="is not valid"):
        read_request(path)


def test_when_the_operator_is_not_an_enabled_admin_then_they_may_not_arm() -> None:
    """Unmapped, disabled, or without arm_live (a risk officer): refused, naming why."""
    admin = user((Role.ADMIN,))
    assert arming_admin(admin, 2005, "ada") is admin
    with pytest.raises(NotArmed, match=r"uid 2999 \(x\) is not mapped"):
        arming_admin(None, 2999, "x")
    with pytest.raises(NotArmed, match="disabled"):
        arming_admin(user((Role.ADMIN,), disabled=True), 2005, "ada")
    with pytest.raises(NotArmed, match=r"ada \(risk_officer\) may not arm_live"):
        arming_admin(user((Role.RISK_OFFICER,)), 2005, "ada")


def test_when_run_through_sudo_then_the_admin_is_the_account_that_ran_it() -> None:
    """SUDO_UID (set by sudo) names the person; without it, or not a number, the real
    uid does."""
    assert invoking_uid({"SUDO_UID": "2006"}) == 2006
    assert invoking_uid({}) == os.getuid()
    assert invoking_uid({"SUDO_UID": "-1"}) == os.getuid()
    assert invoking_uid({"SUDO_UID": ""}) == os.getuid()


def admin_store(tmp_path: Path) -> tuple[UserStore, str]:
    """A store (3 refusals lock out) with ada, an admin enrolled at T0; her seed."""
    users = store(tmp_path, clock=SimClock(T0))
    seed, confirmed = enrolled("ada", T0 - STEP_NS)
    users.add("ada", PASSWORD, roles=("admin",), os_uid=2005, totp=confirmed)
    return users, seed


def step_up(users: UserStore, given: str, now_ns: int = T0) -> None:
    require_step_up(users.verify_totp("ada", given, now_ns=now_ns, source="test"), 2005)


def test_when_the_admin_gives_the_current_code_then_the_step_up_passes(tmp_path: Path) -> None:
    """The current code passes once, the next step's too; the first again is a replay."""
    users, seed = admin_store(tmp_path)
    step_up(users, code(seed, T0))
    step_up(users, code(seed, T0, steps=1))
    with pytest.raises(NotArmed, match=r"ada \(uid 2005\): the code was used already"):
        step_up(users, code(seed, T0))


def test_when_the_code_is_wrong_or_old_then_refused_naming_the_admin_not_the_code(
    tmp_path: Path,
) -> None:
    """Wrong, and too old (a step outside the window): refused naming ada, without the
    code; each refusal counts towards her lockout."""
    users, seed = admin_store(tmp_path)
    wrong = "000000" if code(seed, T0) != "000000" else "111111"
    with pytest.raises(NotArmed, match="step-up refused for ada") as refused:
        step_up(users, wrong)
    assert "the code is wrong" in str(refused.value) and wrong not in str(refused.value)
    old = code(seed, T0, steps=-3)
    with pytest.raises(NotArmed, match="the code is too old") as refused:
        step_up(users, old)
    assert old not in str(refused.value)
    found = users.find("ada")
    assert found is not None and found.failed_logins == 2


def test_when_the_refusals_reach_the_limit_then_the_admin_is_locked_out(tmp_path: Path) -> None:
    """The third refusal in a row locks ada out (saying until when and how to end it);
    then even the right code is refused as locked out."""
    users, seed = admin_store(tmp_path)
    for _ in range(2):
        with pytest.raises(NotArmed, match="the code is wrong"):
            step_up(users, "not-a-code")
    with pytest.raises(NotArmed, match="ada is now locked out until") as locked:
        step_up(users, "not-a-code")
    assert "bastion users enable ada" in str(locked.value)
    with pytest.raises(NotArmed, match=r"locked out until .* after repeated refusals"):
        step_up(users, code(seed, T0))


def test_when_the_admin_has_no_second_factor_then_refused_saying_how_to_enrol(
    tmp_path: Path,
) -> None:
    """An admin mapped by uid but never enrolled cannot step up: refused, naming reset-mfa."""
    users = store(tmp_path, clock=SimClock(T0))
    users.add("ada", PASSWORD, roles=("admin",), os_uid=2005, totp=None)
    with pytest.raises(NotArmed, match=r"no second factor .*bastion users reset-mfa ada"):
        step_up(users, "123456")
