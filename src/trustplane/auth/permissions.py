"""App permissions, named as Microsoft Graph names them, and the caller they are checked on."""

from __future__ import annotations

from dataclasses import dataclass, field

USER_READ_ALL = "User.Read.All"
USER_READWRITE_ALL = "User.ReadWrite.All"
GROUP_READ_ALL = "Group.Read.All"
GROUP_READWRITE_ALL = "Group.ReadWrite.All"
GROUPMEMBER_READ_ALL = "GroupMember.Read.All"
GROUPMEMBER_READWRITE_ALL = "GroupMember.ReadWrite.All"
DIRECTORY_READ_ALL = "Directory.Read.All"
DIRECTORY_READWRITE_ALL = "Directory.ReadWrite.All"
APPLICATION_READWRITE_ALL = "Application.ReadWrite.All"
AUDITLOG_READ_ALL = "AuditLog.Read.All"
SCIM_READWRITE_ALL = "Scim.ReadWrite.All"
METRICS_READ = "Metrics.Read"
POLICY_READ_ALL = "Policy.Read.All"
POLICY_READ_CONDITIONAL_ACCESS = "Policy.Read.ConditionalAccess"
POLICY_READWRITE_CONDITIONAL_ACCESS = "Policy.ReadWrite.ConditionalAccess"

# Every permission TrustPlane knows; `apps create` and `tokens create` refuse others so typos surface.
KNOWN_PERMISSIONS: frozenset[str] = frozenset(
    {
        USER_READ_ALL,
        USER_READWRITE_ALL,
        GROUP_READ_ALL,
        GROUP_READWRITE_ALL,
        GROUPMEMBER_READ_ALL,
        GROUPMEMBER_READWRITE_ALL,
        DIRECTORY_READ_ALL,
        DIRECTORY_READWRITE_ALL,
        APPLICATION_READWRITE_ALL,
        AUDITLOG_READ_ALL,
        SCIM_READWRITE_ALL,
        METRICS_READ,
        POLICY_READ_ALL,
        POLICY_READ_CONDITIONAL_ACCESS,
        POLICY_READWRITE_CONDITIONAL_ACCESS,
        "IdentityRiskyUser.Read.All",
        "IdentityRiskyUser.ReadWrite.All",
        "IdentityRiskEvent.Read.All",
        "IdentityRiskEvent.ReadWrite.All",
        "CloudApp-Discovery.Read.All",
        "CloudApp-Discovery.ReadWrite.All",
        "CloudApp-Discovery.Deanonymize",  # TrustPlane's own: resolve anonymised discovery users / IPs
        "SecurityAlert.Read.All",
        "SecurityAlert.ReadWrite.All",
        "CloudApp-Activity.Read.All",
        "CloudApp-Activity.ReadWrite.All",
    }
)

# What a read or a write of each kind of directory object accepts (any one suffices), as in Graph.
READ_USERS = (USER_READ_ALL, USER_READWRITE_ALL, DIRECTORY_READ_ALL, DIRECTORY_READWRITE_ALL)
WRITE_USERS = (USER_READWRITE_ALL, DIRECTORY_READWRITE_ALL)
READ_GROUPS = (
    GROUP_READ_ALL,
    GROUP_READWRITE_ALL,
    GROUPMEMBER_READ_ALL,
    GROUPMEMBER_READWRITE_ALL,
    DIRECTORY_READ_ALL,
    DIRECTORY_READWRITE_ALL,
)
WRITE_GROUPS = (GROUP_READWRITE_ALL, DIRECTORY_READWRITE_ALL)
WRITE_MEMBERS = (GROUPMEMBER_READWRITE_ALL, GROUP_READWRITE_ALL, DIRECTORY_READWRITE_ALL)
# Conditional access policies, named locations, templates and What-If.
READ_CONDITIONAL_ACCESS = (
    POLICY_READ_CONDITIONAL_ACCESS,
    POLICY_READ_ALL,
    POLICY_READWRITE_CONDITIONAL_ACCESS,
)
WRITE_CONDITIONAL_ACCESS = (POLICY_READWRITE_CONDITIONAL_ACCESS,)
# Identity protection: risky users (and their actions), risk detections, the sign-in log.
IDENTITY_RISKY_USER_READ_ALL = "IdentityRiskyUser.Read.All"
IDENTITY_RISKY_USER_READWRITE_ALL = "IdentityRiskyUser.ReadWrite.All"
IDENTITY_RISK_EVENT_READ_ALL = "IdentityRiskEvent.Read.All"
READ_RISKY_USERS = (IDENTITY_RISKY_USER_READ_ALL, IDENTITY_RISKY_USER_READWRITE_ALL)
WRITE_RISKY_USERS = (IDENTITY_RISKY_USER_READWRITE_ALL,)
READ_RISK_EVENTS = (IDENTITY_RISK_EVENT_READ_ALL,)
READ_SIGN_INS = (AUDITLOG_READ_ALL,)
INGEST_SIGN_INS = ("IdentityRiskEvent.ReadWrite.All",)  # sign-in events from other identity providers
# Alerts and activities (the MCAS face), alert policies and webhooks.
READ_ALERTS = ("SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All")
WRITE_ALERTS = ("SecurityAlert.ReadWrite.All",)
READ_ACTIVITIES = ("CloudApp-Activity.Read.All", "CloudApp-Activity.ReadWrite.All")
WRITE_ACTIVITIES = ("CloudApp-Activity.ReadWrite.All",)
# Reading a user's memberships needs to see both users and groups.
READ_MEMBERSHIPS = READ_GROUPS


@dataclass(frozen=True)
class Principal:
    """A verified caller. ``tenant_id`` comes from the verified credential, never from the request."""

    tenant_id: str
    kind: str  # "app" | "api_token" | "user" (a delegated token: an app acting for a signed-in user)
    id: str
    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)  # a delegated token's scp
    client_id: str = ""  # the app the token was issued to (azp)
    settings: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def has_any(self, permissions: tuple[str, ...] | list[str]) -> bool:
        return any(p in self.roles for p in permissions)
