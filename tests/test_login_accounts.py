"""core.store.users: private workspaces under one root, and read-only shares between users."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from core.errors import InputError
from core.store import users
from core.store.atomic import is_temporary
from core.store.locks import LockBusy
from core.store.users import SHARES_FILE, Accounts, User, normalise_email, user_id
from tests.store_support import lock_held_by_a_stopped_process

ISSUER = "https://login.hospital.example/realms/neuro"
ALICE = User(subject="a1f9-0001", issuer=ISSUER, email="Alice.Doe@Hospital.example", name="Alice Doe", email_verified=True)
BOB = User(subject="b2e8-0002", issuer=ISSUER, email="bob@hospital.example", name="Bob Roe")
MALLORY = User(subject="m3d7-0003", issuer=ISSUER, email="bob@hospital.example", name="Mallory", email_verified=False)


@pytest.fixture
def accounts(app_workspace_template, tmp_path):
    """A root where Alice holds the template's cohort "tiny" and Bob has an empty workspace."""
    accounts = Accounts(tmp_path / "root")
    shutil.copytree(app_workspace_template, accounts.workspace_path(ALICE))
    return accounts


def test_user_id_is_stable_hex_and_tells_issuers_apart():
    assert ALICE.id == user_id(ISSUER, "a1f9-0001") == User.from_claims({"sub": "a1f9-0001", "iss": ISSUER}).id
    assert len(ALICE.id) == 24 and int(ALICE.id, 16) >= 0
    # The same subject at another provider is another person.
    assert user_id("https://other-idp.example", "a1f9-0001") != ALICE.id
    # Concatenation cannot make two identities collide ("ab" + "c" vs "a" + "bc").
    assert user_id("ab", "c") != user_id("a", "bc")
    with pytest.raises(InputError, match="no subject"):
        user_id(ISSUER, "")


def test_a_users_folder_never_holds_their_address_or_name(accounts):
    path = accounts.workspace_path(ALICE)
    assert path.parent == accounts.root / "users" and path.name == ALICE.id
    assert "alice" not in str(path).lower() and "@" not in str(path)
    for bad in ("../x", "alice@hospital.example", ALICE.id[:-1], ALICE.id.upper()):
        with pytest.raises(InputError, match="not a user id"):
            accounts.workspace_path(bad)


def test_workspaces_are_private(accounts):
    assert accounts.workspace(ALICE).names() == ["tiny"]
    assert accounts.workspace(BOB).names() == []
    assert accounts.shared_with(BOB) == []
    assert not accounts.can_read(BOB, ALICE.id, "tiny")
    assert accounts.can_read(ALICE, ALICE.id, "tiny")


def test_share_then_unshare(accounts):
    share = accounts.share(ALICE, "tiny", "  BOB@hospital.example ")
    assert (share.owner_id, share.cohort, share.with_email, share.owner_label) == (ALICE.id, "tiny", "bob@hospital.example", "Alice Doe")
    accounts.share(ALICE, "tiny", "bob@hospital.example")  # sharing again keeps one entry (asserted below)
    assert [s.key for s in accounts.shared_with(BOB)] == [f"{ALICE.id}/tiny"]
    assert [(s.cohort, s.with_email) for s in accounts.shares_of(ALICE)] == [("tiny", "bob@hospital.example")]
    assert accounts.can_read(BOB, ALICE.id, "tiny")
    cohort = accounts.load_shared(BOB, ALICE.id, "tiny")
    assert cohort.name == "tiny" and cohort.n_patients == 60
    # The registry names the owner by id, never by a path or the owner's address.
    registry = json.loads((accounts.root / SHARES_FILE).read_text())
    assert registry == {"shares": [{**registry["shares"][0], "owner_id": ALICE.id, "cohort": "tiny", "with_email": "bob@hospital.example"}]}
    assert "alice.doe@" not in (accounts.root / SHARES_FILE).read_text().lower()

    assert accounts.unshare(ALICE, "tiny", "bob@hospital.example") is True
    assert accounts.unshare(ALICE, "tiny", "bob@hospital.example") is False
    assert accounts.shared_with(BOB) == [] and not accounts.can_read(BOB, ALICE.id, "tiny")


def test_refusals_say_the_same_whether_or_not_the_cohort_exists(accounts):
    with pytest.raises(InputError) as exists:
        accounts.load_shared(BOB, ALICE.id, "tiny")
    with pytest.raises(InputError) as missing:
        accounts.load_shared(BOB, ALICE.id, "tinx")
    assert str(exists.value).replace("tiny", "?") == str(missing.value).replace("tinx", "?")


def test_only_own_existing_cohorts_are_shared_with_real_addresses(accounts):
    with pytest.raises(InputError, match="no cohort named 'tiny' in your workspace"):
        accounts.share(BOB, "tiny", "alice.doe@hospital.example")  # Bob cannot share Alice's cohort
    with pytest.raises(InputError, match="not an e-mail address"):
        accounts.share(ALICE, "tiny", "bob")
    with pytest.raises(InputError, match="your own address"):
        accounts.share(ALICE, "tiny", "alice.doe@hospital.example")
    with pytest.raises(InputError, match="not allowed"):
        accounts.share(ALICE, "../tiny", "bob@hospital.example")
    assert not (accounts.root / SHARES_FILE).exists()


def test_an_unverified_address_receives_nothing(accounts):
    accounts.share(ALICE, "tiny", "bob@hospital.example")
    assert MALLORY.share_email is None and accounts.shared_with(MALLORY) == []
    assert not accounts.can_read(MALLORY, ALICE.id, "tiny")
    assert User.from_claims({"sub": "x", "iss": ISSUER, "email": "bob@hospital.example", "email_verified": "false"}).share_email is None


def test_a_deleted_cohort_leaves_the_lists(accounts):
    accounts.share(ALICE, "tiny", "bob@hospital.example")
    accounts.workspace(ALICE).delete("tiny")
    assert accounts.shared_with(BOB) == [] and not accounts.can_read(BOB, ALICE.id, "tiny")


def test_concurrent_shares_are_all_kept(accounts):
    emails = [f"colleague{i}@hospital.example" for i in range(24)]
    errors = []

    def share(email):
        try:
            Accounts(accounts.root).share(ALICE, "tiny", email)  # each thread opens the registry itself
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=share, args=(e,)) for e in emails]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(s.with_email for s in accounts.shares_of(ALICE)) == sorted(emails)
    assert [p.name for p in accounts.root.iterdir() if is_temporary(p)] == []  # no temporary file left


def test_a_share_while_a_stopped_process_holds_the_registry_names_it_and_changes_nothing(accounts, monkeypatch):
    monkeypatch.setattr(users, "REGISTRY_LOCK_WAIT_S", 0.3)
    accounts.share(ALICE, "tiny", "bob@hospital.example")
    before = (accounts.root / SHARES_FILE).read_bytes()
    with lock_held_by_a_stopped_process(accounts.root / "shares.lock") as holder:
        busy = f"the shares registry of this server is locked by process {holder} \\(stopped\\) for more than 0.3 s"
        with pytest.raises(LockBusy, match=busy):
            accounts.share(ALICE, "tiny", "carol@hospital.example")
        with pytest.raises(LockBusy, match=busy):
            accounts.unshare(ALICE, "tiny", "bob@hospital.example")
        assert [s.cohort for s in accounts.shared_with(BOB)] == ["tiny"]  # reading needs no lock
    assert (accounts.root / SHARES_FILE).read_bytes() == before
    accounts.share(ALICE, "tiny", "carol@hospital.example")  # the holder has gone
    assert [s.with_email for s in accounts.shares_of(ALICE)] == ["bob@hospital.example", "carol@hospital.example"]


def test_a_damaged_registry_is_an_input_error(accounts):
    (accounts.root / SHARES_FILE).write_text("{not json")
    with pytest.raises(InputError, match="shares registry cannot be read"):
        accounts.shared_with(BOB)


def test_normalise_email():
    assert normalise_email(" Bob@Hospital.Example ") == "bob@hospital.example"
    for bad in ("", "bob", "bob@", "@hospital.example", "a b@hospital.example", "bob@hospital/../x.example"):
        with pytest.raises(InputError):
            normalise_email(bad)
