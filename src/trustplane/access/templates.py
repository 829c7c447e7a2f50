"""The policy templates an admin can create in one call: block legacy authentication, MFA for
administrators, block high user risk, MFA for medium or high sign-in risk. Shaped as Graph's
``conditionalAccessTemplate`` (``details`` holds the policy's conditions and controls)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

# Built-in directory role template ids (the same in every Entra tenant): Global, Security, SharePoint,
# Exchange, Conditional Access, Helpdesk, Billing, User, Authentication, Application, Cloud Application,
# Password, Privileged Authentication and Privileged Role Administrator.
ADMIN_ROLE_IDS = (
    "62e90394-69f5-4237-9190-012177145e10",
    "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
    "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "b0f54661-2d74-4c50-afa3-1ec803f12efe",
    "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "158c047a-c907-4556-b7ef-446551a6b5f7",
    "966707d0-3269-4727-9be2-8c3a10f19b9d",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "e8611ab8-c189-46e8-94e1-60213ab1f814",
)
_NAMESPACE = uuid.UUID("5b0c2a4e-3f1d-4c8e-9a7b-2d6e1f0a9c31")


@dataclass(frozen=True)
class PolicyTemplate:
    key: str
    name: str
    description: str
    scenarios: str
    details: dict[str, Any]

    @property
    def id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, self.key))

    def as_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "scenarios": self.scenarios,
            "details": copy.deepcopy(self.details),
        }

    def policy_body(
        self, *, state: str, exclude_users: list[str], exclude_groups: list[str]
    ) -> dict[str, Any]:
        body = copy.deepcopy(self.details)
        users = body["conditions"]["users"]
        users["excludeUsers"] = list(dict.fromkeys([*users.get("excludeUsers", []), *exclude_users]))
        users["excludeGroups"] = list(dict.fromkeys([*users.get("excludeGroups", []), *exclude_groups]))
        return {"displayName": self.name, "state": state, "templateId": self.id, **body}


def _conditions(**extra: Any) -> dict[str, Any]:
    return {
        "users": {"includeUsers": ["All"], "excludeUsers": [], "excludeGroups": []},
        "applications": {"includeApplications": ["All"]},
        "clientAppTypes": ["all"],
        **extra,
    }


TEMPLATES: tuple[PolicyTemplate, ...] = (
    PolicyTemplate(
        "block-legacy-authentication",
        "Block legacy authentication",
        "Block Exchange ActiveSync and other legacy clients, which cannot do multifactor authentication.",
        "secureFoundation,zeroTrust,remoteWork",
        {
            "conditions": _conditions(clientAppTypes=["exchangeActiveSync", "other"]),
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
    ),
    PolicyTemplate(
        "require-mfa-for-administrators",
        "Require multifactor authentication for admins",
        "Require multifactor authentication for accounts in the privileged built-in directory roles.",
        "secureFoundation,zeroTrust,protectAdmins",
        {
            "conditions": _conditions(
                users={"includeRoles": list(ADMIN_ROLE_IDS), "excludeUsers": [], "excludeGroups": []}
            ),
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        },
    ),
    PolicyTemplate(
        "block-high-user-risk",
        "Block access for high user risk",
        "Block sign-ins of users whose user risk is high until an admin remediates it.",
        "zeroTrust,emergingThreats",
        {
            "conditions": _conditions(userRiskLevels=["high"]),
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
    ),
    PolicyTemplate(
        "require-mfa-for-risky-sign-ins",
        "Require multifactor authentication for risky sign-ins",
        "Require multifactor authentication, at every sign-in, when sign-in risk is medium or high.",
        "zeroTrust,remoteWork,emergingThreats",
        {
            "conditions": _conditions(signInRiskLevels=["high", "medium"]),
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
            "sessionControls": {
                "signInFrequency": {
                    "isEnabled": True,
                    "frequencyInterval": "everyTime",
                    "authenticationType": "primaryAndSecondaryAuthentication",
                }
            },
        },
    ),
)
BY_ID = {t.id: t for t in TEMPLATES}
