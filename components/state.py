"""The app's shared state in one facade: who is logged in, which workspace, which cohort, export
format, the saved runs, and what a session remembers between reruns (settings, edits, a widget's value).

Pages and panels never touch ``st.session_state`` directly; they call these functions.

Logins are on when ``.streamlit/secrets.toml`` has an ``[auth]`` section (OpenID Connect through
``st.login``). Then ``NEUROPREDICT_WORKSPACE`` is the root of every user's private workspace
(:class:`core.store.users.Accounts`), and everything here answers for the logged-in user only.
Without it the app is single-user and the workspace is ``NEUROPREDICT_WORKSPACE`` itself.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path, PurePosixPath

import streamlit as st

from core.data.cohort import Cohort
from core.errors import InputError
from core.store.users import Accounts, Share, User
from core.store.workspace import Workspace, default_workspace

_COHORT_KEY = "neuropredict.cohort_name"
_FORMAT_KEY = "neuropredict.image_format"
_ENTRY_KEY = "neuropredict.entry_point_ran"
_FLASH_KEY = "neuropredict.flash"
_DEEP_LINK_KEY = "neuropredict.deep_link"
_DEEP_LINK_PARAMS = ("cohort",)  # the query parameters a deep link may carry
_AFTER_LOGIN_STORAGE = "neuropredict.after_login"  # the tab's sessionStorage item that carries a link through the login
_AFTER_LOGIN_CHECKED_KEY = "neuropredict.after_login_checked"
LAST_COHORT_SETTING = "last_cohort"
_DEFAULT_PAGE_STEM = "cohort"  # the default page's url_path is ""


LOCAL_OWNER = "local"  # owner id of everything when logins are off


# --- who is logged in ------------------------------------------------------------------------------


def logins_enabled() -> bool:
    """True when secrets.toml configures OpenID Connect (an ``[auth]`` section)."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all
        return False


def current_user() -> User | None:
    """The logged-in user, or None when logins are off (single-user) or nobody is logged in yet."""
    if not logins_enabled() or not st.user.is_logged_in:
        return None
    return User.from_claims(st.user.to_dict())


def owner_id() -> str:
    """Who owns what this session makes (e.g. a background job): the user's id, or ``"local"``
    when logins are off."""
    user = current_user()
    return user.id if user is not None else LOCAL_OWNER


def login_providers() -> list[str | None]:
    """The providers to offer on the login screen: the named ``[auth.<name>]`` sections, else
    ``[None]`` for the one provider configured in ``[auth]`` itself."""
    section = st.secrets.get("auth", {})
    named = [key for key, value in section.items() if hasattr(value, "keys")]
    return named or [None]


@st.cache_resource
def _accounts_at(root: str) -> Accounts:
    return Accounts(root)


def accounts() -> Accounts:
    """The users' workspaces and shares under the root (``NEUROPREDICT_WORKSPACE``)."""
    return _accounts_at(str(default_workspace()))


def _require_user() -> User:
    user = current_user()
    if user is None:
        # Pages run only after app.py's login screen, so this is a programming error, not a user's.
        raise RuntimeError("logins are on but nobody is logged in: app.py shows the login screen first")
    return user


# --- the workspace: the user's own when logins are on ----------------------------------------------


@st.cache_resource
def _workspace_at(path: str) -> Workspace:
    return Workspace(path)


def workspace() -> Workspace:
    """This session's workspace: the logged-in user's private one, or the one workspace when logins are off."""
    if logins_enabled():
        return _workspace_at(str(accounts().workspace_path(_require_user())))
    return _workspace_at(str(default_workspace()))


def cache_scope() -> str:
    """What every cache of user data includes in its key: this session's workspace folder."""
    return str(workspace().path)


def _scoped(cache, **options):
    def decorate(func):
        signature = inspect.signature(func)
        scope = inspect.Parameter("workspace_scope", inspect.Parameter.POSITIONAL_OR_KEYWORD)

        def cached_call(workspace_scope, *args, **kwargs):
            return func(*args, **kwargs)

        # Streamlit names a cache by module, qualified name and source (found through __wrapped__),
        # and skips "_"-prefixed arguments by the names in the signature: give it the function's own.
        cached_call.__module__, cached_call.__qualname__, cached_call.__name__ = func.__module__, func.__qualname__, func.__name__
        cached_call.__wrapped__ = func
        cached_call.__signature__ = signature.replace(parameters=[scope, *signature.parameters.values()])
        cached = cache(**options)(cached_call)

        @functools.wraps(func)
        def call(*args, **kwargs):
            return cached(cache_scope(), *args, **kwargs)

        call.clear = cached.clear
        return call

    return decorate


def user_cache_data(**options):
    """``st.cache_data(**options)`` whose key also holds this session's workspace folder
    (:func:`cache_scope`): one user's entry is never served to another, even for equal arguments."""
    return _scoped(st.cache_data, **options)


def user_cache_resource(**options):
    """``st.cache_resource(**options)`` keyed also by this session's workspace folder (see :func:`user_cache_data`)."""
    return _scoped(st.cache_resource, **options)


# --- which cohort: the user's own, or one shared with them (read-only) -----------------------------


@st.cache_resource(max_entries=4)
def _load_cohort(path: str, name: str, saved_at) -> Cohort:
    # saved_at is part of the key: saving a cohort again under the same name reloads it.
    return Workspace(path).load(name)


def shared_cohorts() -> list[Share]:
    """Cohorts other users share with this user (read-only); empty when logins are off."""
    user = current_user()
    return accounts().shared_with(user) if user is not None else []


def cohort_labels() -> dict[str, str]:
    """The cohorts this session may open, key -> how it reads in a list: its own cohorts by name, then
    each cohort shared with it under the key ``<owner id>/<name>`` (a cohort name never holds a '/'),
    read as "name (shared by owner, read-only)"."""
    labels = {name: name for name in workspace().names()}
    for s in shared_cohorts():
        labels[s.key] = f"{s.cohort} (shared by {s.owner_label}, read-only)"
    return labels


def cohort_choices() -> list[str]:
    """Keys of the cohorts this session may open (see :func:`cohort_labels`)."""
    return list(cohort_labels())


def current_cohort_key() -> str | None:
    """The cohort in use: this session's choice, else the one last opened (kept in the user's own
    workspace), else the first own cohort. Only keys in :func:`cohort_choices` are ever returned."""
    ws = workspace()
    choices = cohort_choices()
    key = st.session_state.get(_COHORT_KEY) or ws.get_setting(LAST_COHORT_SETTING)
    if key not in choices:
        key = choices[0] if choices else None
    return key


def current_cohort_name() -> str | None:
    """The name of the cohort in use (see :func:`current_cohort_key`)."""
    key = current_cohort_key()
    return None if key is None else key.rsplit("/", 1)[-1]


def current_cohort_is_shared() -> bool:
    """True when the cohort in use is another user's, shared read-only."""
    key = current_cohort_key()
    return key is not None and "/" in key


def set_current_cohort(key: str) -> None:
    """Make the cohort with this key (see :func:`cohort_choices`) the current one, and remember it."""
    if key not in cohort_choices():
        raise InputError(f"no cohort named {key.rsplit('/', 1)[-1]!r} in your workspace or shared with you.", field="cohort")
    st.session_state[_COHORT_KEY] = key
    workspace().set_setting(LAST_COHORT_SETTING, key)


def open_cohort_link(name: str) -> None:
    """Open the cohort a link names (``?cohort=NAME``): the user's own cohort of that name, else the
    one cohort of that name shared with them. InputError otherwise, saying the same whether or not
    another user has such a cohort."""
    own = workspace().names()
    if name in own:
        return set_current_cohort(name)
    shared = [s.key for s in shared_cohorts() if s.cohort == name or s.key == name]
    if len(shared) == 1:
        return set_current_cohort(shared[0])
    if len(shared) > 1:
        raise InputError(f"{len(shared)} colleagues share a cohort named {name!r}; pick one in the sidebar.", field="cohort")
    raise InputError(f"no cohort named {name!r} in your workspace or shared with you.", field="cohort")


def share_cohort(name: str, with_email: str) -> Share:
    """Share one of the user's own cohorts read-only with the colleague at ``with_email``. InputError
    when logins are off, the cohort is not the user's or the address is not one."""
    user = current_user()
    if user is None:
        raise InputError("sharing needs logins: without them everyone using this server sees every cohort.", field="cohort")
    return accounts().share(user, name, with_email)


def unshare_cohort(name: str, with_email: str) -> bool:
    """Stop sharing one of the user's cohorts with ``with_email``; True when it was shared."""
    return accounts().unshare(_require_user(), name, with_email)


def my_shares() -> list[Share]:
    """The shares the logged-in user has made (none when logins are off)."""
    user = current_user()
    return accounts().shares_of(user) if user is not None else []


def current_cohort() -> Cohort | None:
    key = current_cohort_key()
    if key is None:
        return None
    if "/" in key:
        owner, name = key.split("/", 1)
        user = _require_user()
        if not accounts().can_read(user, owner, name):  # cohort_choices checked it; check again where the data are read
            return None
        ws = accounts().workspace(owner)
    else:
        ws, name = workspace(), key
    return _load_cohort(str(ws.path), name, ws.saved_at(name))


def cohort_page(page_path: str, title: str) -> Cohort:
    """Header of a page that works on the current cohort: title, flash, the cohort and its caption.

    Stops the page with a pointer to the Cohort page when the workspace holds no cohort.
    """
    require_entry_point(page_path)
    st.title(title)
    show_flash()
    cohort = current_cohort()
    if cohort is None:
        st.info("The workspace holds no cohort yet: generate one on the Cohort page.")
        st.stop()
    st.caption(f"**{cohort.name}** · {cohort.describe()}")
    return cohort


def workspace_path() -> Path:
    return workspace().path


# --- saved runs, loaded once per run ---------------------------------------------------------------


class _NotSaved(Exception):
    """Raised inside the cached loader so that "not saved yet" is never cached."""


@st.cache_resource(max_entries=8, show_spinner="Loading the saved run ...")
def _load_saved(workspace_path: str, kind: str, key: str, version, _cohort: Cohort | None = None):
    # ``version`` is part of the cache key: a run saved again under the same key is reloaded.
    ws = Workspace(workspace_path)
    result = ws.load_cv(key, _cohort) if kind == "cv" else ws.load_ablation(key)
    if result is None:
        raise _NotSaved(key)
    return result


def saved_cv_run(cohort: Cohort, run: str):
    """The stored cross-validation run with this digest (:func:`core.modelling.run_digest`), or None.

    Raises InputError when it cannot be read.
    """
    try:
        return _load_saved(str(workspace_path()), "cv", run, None, cohort)
    except _NotSaved:
        return None


def saved_ablation_run(digest: str):
    """The stored ablation run (complete or partial) with this digest, or None. InputError when unreadable."""
    saved_at = workspace().ablation_saved_at(digest)
    if saved_at is None:
        return None
    try:
        return _load_saved(str(workspace_path()), "ablation", digest, saved_at)
    except _NotSaved:
        return None


# --- what a session remembers between reruns --------------------------------------------------------


def session_store(name: str, factory=dict):
    """This session's object under ``name`` (made by ``factory()`` on first use): settings that
    survive page switches, what-if edits, an upload in progress."""
    key = f"neuropredict.{name}"
    if key not in st.session_state:
        st.session_state[key] = factory()
    return st.session_state[key]


def widget_value(key: str, default=None):
    """The current value of the widget with this key (``default`` before it was first drawn)."""
    return st.session_state.get(key, default)


def set_widget_value(key: str, value) -> None:
    """Preset the widget with this key (before it is drawn in this run)."""
    st.session_state[key] = value


def forget_widget(key: str) -> None:
    """Drop a widget's remembered value, so it starts from its default when drawn again."""
    st.session_state.pop(key, None)


def image_format() -> str:
    """Format of the camera button on every figure: "png" or "svg"."""
    return st.session_state.get(_FORMAT_KEY, "png")


def image_format_selector() -> None:
    st.radio("Figure download format", ["png", "svg"], key=_FORMAT_KEY, horizontal=True, help="Format of the camera button on every figure.")


def mark_entry_point() -> None:
    """Called by app.py on every run, before the page."""
    st.session_state[_ENTRY_KEY] = True


def require_entry_point(page_path: str) -> None:
    """Send a page that runs without app.py to the app, which then opens this page.

    A first visit straight to a page URL on a fresh server makes Streamlit run the file in
    ``pages/`` on its own (its legacy multipage mode), without the sidebar or page config.
    ``page_path`` is the page's path relative to app.py, e.g. ``"pages/prediction.py"``.
    """
    if not st.session_state.get(_ENTRY_KEY):
        st.session_state[_DEEP_LINK_KEY] = (page_path, _deep_link_params())  # switch_page drops the query
        st.switch_page("app.py")


def _deep_link_params() -> dict:
    return {name: st.query_params[name] for name in _DEEP_LINK_PARAMS if name in st.query_params}


def follow_deep_link(current_page) -> None:
    """Called by app.py after st.navigation: open the page (and cohort) a first deep link asked for."""
    link = st.session_state.pop(_DEEP_LINK_KEY, None)
    if not link:
        return
    target, params = link
    if PurePosixPath(target).stem != (current_page.url_path or _DEFAULT_PAGE_STEM):
        st.switch_page(target, query_params=params or None)
    st.query_params.update(params)


def keep_link_through_login(requested_page) -> None:
    """On the login screen: keep the page (``requested_page``, from st.navigation, unless a page file
    ran first and sent the visitor here) and cohort the visitor's link asked for in the browser tab.

    The identity provider sends every login back to the app's root, and the session that asked
    does not survive it; the tab's sessionStorage does, and :func:`follow_link_after_login` reads it.
    """
    from urllib.parse import urlencode

    page_path, params = st.session_state.get(_DEEP_LINK_KEY) or (requested_page.url_path, _deep_link_params())
    stem = PurePosixPath(page_path).stem
    target = ("" if stem in ("", _DEFAULT_PAGE_STEM) else stem) + (f"?{urlencode(params)}" if params else "")
    keep = f"setItem({_AFTER_LOGIN_STORAGE!r}, {target!r})" if target else f"removeItem({_AFTER_LOGIN_STORAGE!r})"  # no stale link from an earlier visit
    st.html(f"<script>sessionStorage.{keep};</script>", unsafe_allow_javascript=True)


def follow_link_after_login() -> None:
    """Once a session, right after a login: open the link :func:`keep_link_through_login` kept, if any.

    Only a page name and a query (no scheme, host or ``//``) is followed, relative to where the
    provider sent the browser back to (the app's root, under any base URL path).
    """
    if st.session_state.get(_AFTER_LOGIN_CHECKED_KEY):
        return
    st.session_state[_AFTER_LOGIN_CHECKED_KEY] = True
    st.html(f"""<script>
const kept = sessionStorage.getItem({_AFTER_LOGIN_STORAGE!r});
if (kept !== null) {{
  sessionStorage.removeItem({_AFTER_LOGIN_STORAGE!r});
  if (/^[a-z_]*(\\?[A-Za-z0-9_=%.~+-]*)?$/.test(kept)) window.location.replace(new URL(kept, window.location.href));
}}
</script>""", unsafe_allow_javascript=True)


def flash(message: str) -> None:
    """Show ``message`` once, on the next run (e.g. after ``st.rerun``)."""
    st.session_state[_FLASH_KEY] = message


def show_flash() -> None:
    # A toast, not an element: an element that comes and goes would shift the page and reset its tabs.
    message = st.session_state.pop(_FLASH_KEY, None)
    if message:
        st.toast(message, icon=":material/check_circle:")
