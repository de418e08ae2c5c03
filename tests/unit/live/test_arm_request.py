"""Four-eyes arming: only an enabled admin asks or approves; a request is approved once,
by another admin (name and uid), within its window, for the config and node it names,
and only as the live vault's key made it. The arming admin is the account that ran
sudo, else the real uid."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

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
    write_request,
)
from bastion.security.roles import Role
from bastion.security.users import User

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
