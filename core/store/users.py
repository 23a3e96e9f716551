"""Users of one server: each user's private workspace under a common root, and the cohorts users share
read-only with named colleagues.

Layout under the root (``NEUROPREDICT_WORKSPACE`` when logins are on)::

    <root>/users/<user id>/      one private workspace per user (see :class:`~core.store.workspace.Workspace`)
    <root>/shares.json           who shares which cohort with whom (rewritten atomically, under a lock)

A user's folder is named by :attr:`User.id`, a sha256 prefix of the OpenID Connect issuer and subject:
stable across logins, the same for nobody else, and never the e-mail address or a name.
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.data.cohort import Cohort
from core.errors import InputError
from core.store.atomic import atomic_write_text
from core.store.locks import exclusive_lock
from core.store.workspace import Workspace

USERS_FOLDER = "users"
SHARES_FILE = "shares.json"
_LOCK_FILE = "shares.lock"
REGISTRY_LOCK_WAIT_S = 10.0  # a share or unshare waits this long for another one, then says who holds it
_ID_LENGTH = 24  # hex characters: 96 bits of sha256
_EMAIL = re.compile(r"^[^@\s/\\]+@[^@\s/\\]+\.[^@\s/\\]+$")


def user_id(issuer: str, subject: str) -> str:
    """The filesystem-safe id of an OpenID Connect identity: the first 24 hex digits of
    sha256(issuer, subject). The subject is unique only within its issuer, so both go in."""
    if not subject:
        raise InputError("the identity provider sent no subject ('sub' claim); cannot tell who logged in.", field="sub")
    return hashlib.sha256(json.dumps([issuer or "", subject]).encode()).hexdigest()[:_ID_LENGTH]


def normalise_email(email: str) -> str:
    """``email`` stripped and lower-cased; InputError unless it looks like an address."""
    text = (email or "").strip().lower()
    if not _EMAIL.match(text):
        raise InputError(f"{email!r} is not an e-mail address; expected name@hospital.org.", field="email")
    return text


@dataclass(frozen=True)
class User:
    """Who is logged in, from the OpenID Connect ID token's claims.

    ``email_verified`` is the provider's claim (None when it sends none); an address the provider
    says is not verified never receives shared cohorts.
    """

    subject: str
    issuer: str
    email: str | None = None
    name: str | None = None
    email_verified: bool | None = None

    @property
    def id(self) -> str:
        """Stable, filesystem-safe id (see :func:`user_id`): the name of the user's folder."""
        return user_id(self.issuer, self.subject)

    @property
    def label(self) -> str:
        """What the app shows for this user: the name, else the e-mail address, else the id."""
        return self.name or self.email or self.id

    @property
    def share_email(self) -> str | None:
        """The address cohorts are shared to, or None (no address, or the provider says it is unverified)."""
        if not self.email or self.email_verified is False:
            return None
        try:
            return normalise_email(self.email)
        except InputError:
            return None

    @classmethod
    def from_claims(cls, claims) -> User:
        """A User from the ID token's claims (``sub``, ``iss``, ``email``, ``name``, ``email_verified``)."""
        verified = claims.get("email_verified")
        if isinstance(verified, str):
            verified = verified.strip().lower() == "true"
        return cls(
            subject=str(claims.get("sub") or ""),
            issuer=str(claims.get("iss") or ""),
            email=claims.get("email") or None,
            name=claims.get("name") or None,
            email_verified=None if verified is None else bool(verified),
        )


@dataclass(frozen=True)
class Share:
    """One cohort of ``owner_id`` that the user with address ``with_email`` may open read-only."""

    owner_id: str
    owner_label: str
    cohort: str
    with_email: str
    shared_at: str

    @property
    def key(self) -> str:
        """``<owner id>/<cohort>``: unambiguous, since a cohort name never holds a '/'."""
        return f"{self.owner_id}/{self.cohort}"


class Accounts:
    """The users' workspaces and the shares registry under one root folder.

    Parameters
    ----------
    root : the common root (created if missing); every user's workspace is a folder below it.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            (self.root / USERS_FOLDER).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the workspaces' root folder: {exc.strerror}.", source=str(self.root)) from exc

    # --- private workspaces ----------------------------------------------------------------------
    def workspace_path(self, user: User | str) -> Path:
        """The folder of a user's private workspace (``user`` or its id)."""
        uid = user.id if isinstance(user, User) else user
        if not re.fullmatch(rf"[0-9a-f]{{{_ID_LENGTH}}}", uid or ""):
            raise InputError(f"{uid!r} is not a user id; expected {_ID_LENGTH} hexadecimal digits.", field="user")
        return self.root / USERS_FOLDER / uid

    def workspace(self, user: User | str) -> Workspace:
        """The user's private workspace (created on first use)."""
        return Workspace(self.workspace_path(user))

    # --- shares ----------------------------------------------------------------------------------
    def share(self, owner: User, cohort: str, with_email: str) -> Share:
        """Let the user with address ``with_email`` open ``owner``'s cohort read-only.

        Raises InputError when the cohort is not in the owner's workspace or the address is not one.
        Sharing again is harmless (one entry).
        """
        Workspace.check_name(cohort)
        email = normalise_email(with_email)
        if owner.share_email == email:
            raise InputError(f"{email} is your own address; the cohort is yours already.", field="email")
        if cohort not in self.workspace(owner).names():
            raise InputError(f"no cohort named {cohort!r} in your workspace to share.", field="cohort")
        entry = Share(owner.id, owner.label, cohort, email, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        with self._registry() as entries:
            if not any(e.owner_id == owner.id and e.cohort == cohort and e.with_email == email for e in entries):
                entries.append(entry)
        return entry

    def unshare(self, owner: User, cohort: str, with_email: str) -> bool:
        """Stop sharing; True when there was such a share."""
        email = normalise_email(with_email)
        with self._registry() as entries:
            kept = [e for e in entries if not (e.owner_id == owner.id and e.cohort == cohort and e.with_email == email)]
            removed = len(kept) != len(entries)
            entries[:] = kept
        return removed

    def shares_of(self, owner: User) -> list[Share]:
        """The shares ``owner`` has made, by cohort then address."""
        return sorted((e for e in self._read() if e.owner_id == owner.id), key=lambda e: (e.cohort, e.with_email))

    def shared_with(self, user: User) -> list[Share]:
        """Cohorts other users share with ``user``'s (verified) address and that still exist, by owner then name."""
        email = user.share_email
        if email is None:
            return []
        found = []
        for e in self._read():
            if e.with_email == email and e.owner_id != user.id and e.cohort in self.workspace(e.owner_id).names():
                found.append(e)
        return sorted(found, key=lambda e: (e.owner_label, e.cohort))

    def can_read(self, user: User, owner_id: str, cohort: str) -> bool:
        """True when ``user`` may open ``owner_id``'s cohort: it is theirs, or it is shared with them."""
        if owner_id == user.id:
            return True
        return any(e.owner_id == owner_id and e.cohort == cohort for e in self.shared_with(user))

    def load_shared(self, user: User, owner_id: str, cohort: str) -> Cohort:
        """Another user's cohort, when it is shared with ``user``.

        Raises InputError otherwise, with the same message whether or not such a cohort exists, so
        the answer tells nothing about other users' workspaces.
        """
        if not self.can_read(user, owner_id, cohort):
            raise InputError(f"no cohort named {cohort!r} is shared with you.", field="cohort")
        return self.workspace(owner_id).load(cohort)

    # --- the registry file -----------------------------------------------------------------------
    def _read(self) -> list[Share]:
        path = self.root / SHARES_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise InputError(f"the shares registry cannot be read ({exc}).", source=str(path)) from exc
        try:
            return [Share(**entry) for entry in raw["shares"]]
        except (KeyError, TypeError) as exc:
            raise InputError(f"the shares registry is not in the expected form ({exc}).", source=str(path)) from exc

    @contextmanager
    def _registry(self):
        """Read-modify-write of the registry under an exclusive lock (:class:`core.store.locks.LockBusy`
        after ``REGISTRY_LOCK_WAIT_S``); the new file replaces the old one whole."""
        with exclusive_lock(self.root / _LOCK_FILE, REGISTRY_LOCK_WAIT_S, "the shares registry of this server is"):
            entries = self._read()
            yield entries
            atomic_write_text(self.root / SHARES_FILE, json.dumps({"shares": [asdict(e) for e in entries]}, indent=1))
