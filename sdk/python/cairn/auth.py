"""Users, tokens, roles and workspaces: Cairn's ``auth`` service.

    from cairn.auth import Auth
    a = Auth()                                   # $CAIRN_ENDPOINT, $CAIRN_TOKEN
    a.create_user("ada", password)               # an admin's call
    token = Auth(token=None).login("ada", password)
    ada = Auth(token=token)
    ada.whoami()                                 # {'user': 'ada', 'roles': [...], ...}
    t = ada.create_token("laptop", expires_in=86400)
    t["token"]                                   # the secret: shown this once
    ada.revoke_token(t["token_id"])

Every method is one synchronous call (docs/AUTH.md lists the verbs, their
fields and limits); a refusal raises the matching CairnError subclass
(Unauthenticated for a wrong password, Overloaded while a user is locked out
after repeated wrong passwords, Conflict, NotFound, BadRequest, TooLarge).

An Auth wraps a Client it makes (endpoint, token, workspace as for Client)
or one it is given (``Auth(client=c)``, which it does not close). Like a
Client, an Auth is for one thread.
"""
from .service import Service

SVC = "auth"


class Auth(Service):
    """The auth verbs over one Client."""

    SVC = SVC

    # -- users -----------------------------------------------------------------

    def login(self, user, password):
        """A login token (a str); it expires after the service's login_ttl."""
        return self._call("login", user=user, password=password)["token"]

    def whoami(self):
        """{'user', 'roles': [names], 'assignments': [{role, ws}], 'workspace'}."""
        return self._call("whoami")

    def create_user(self, user, password):
        self._call("create_user", user=user, password=password)

    def delete_user(self, user):
        """The user, its tokens and its role assignments."""
        self._call("delete_user", user=user)

    def change_password(self, user, password, old_password=None):
        """old_password is needed for one's own; the user's login tokens end."""
        self._call("change_password", user=user, password=password,
                   old_password=old_password)

    # -- tokens ----------------------------------------------------------------

    def create_token(self, name, expires_in=None, owner=None):
        """{'token' (the secret, shown once), 'token_id', 'expires' (ms, 0 = never)}.

        expires_in: seconds (None or 0: never). owner: another principal's
        token (an admin's call).
        """
        return self._call("create_token", name=name, expires_in=expires_in, owner=owner)

    def revoke_token(self, token_id):
        self._call("revoke_token", token_id=token_id)

    def list_tokens(self):
        """[{token_id, name, owner, created, expires, last_used}], no secrets."""
        return self._call("list_tokens")["tokens"]

    def resolve(self, token):
        """What the kernel asks: {principal, token_id, expires, grants}."""
        return self._call("resolve", token=token)

    # -- roles -----------------------------------------------------------------

    def define_role(self, name, actions, not_actions=None):
        """A custom role: action patterns (``*``, ``svc.*``, ``*.read``,
        ``svc.action``); not_actions win over actions."""
        self._call("define_role", name=name, actions=list(actions),
                   not_actions=None if not_actions is None else list(not_actions))

    def assign_role(self, principal, role, workspace=None):
        """workspace None: every workspace."""
        self._call("assign_role", principal=principal, role=role, workspace=workspace)

    def unassign_role(self, principal, role, workspace=None):
        self._call("unassign_role", principal=principal, role=role, workspace=workspace)

    def list_roles(self):
        """[{name, builtin, actions, not_actions}]."""
        return self._call("list_roles")["roles"]

    # -- workspaces --------------------------------------------------------------

    def create_workspace(self, name):
        self._call("create_workspace", name=name)

    def list_workspaces(self):
        """[{name, created}]."""
        return self._call("list_workspaces")["workspaces"]

    def delete_workspace(self, name):
        """Not ``default``; its role assignments go with it."""
        self._call("delete_workspace", name=name)
