"""Every alert policy, by key. One class per policy behind one interface (``base.AlertPolicy``)."""

from __future__ import annotations

from trustplane.alerts.policies.base import AlertPolicy
from trustplane.alerts.policies.directory import MassDeletion
from trustplane.alerts.policies.discovery import NewRiskyApp, UnsanctionedAppUse, UnusualUploadVolume
from trustplane.alerts.policies.identity import ConfirmedCompromise, ImpossibleTravel, RiskySignIn, RiskyUser

POLICIES: dict[str, AlertPolicy] = {
    p.key: p
    for p in (
        RiskyUser(),
        RiskySignIn(),
        ImpossibleTravel(),
        ConfirmedCompromise(),
        NewRiskyApp(),
        UnsanctionedAppUse(),
        UnusualUploadVolume(),
        MassDeletion(),
    )
}

# Every event type some policy or the activity log reads.
__all__ = ["POLICIES", "AlertPolicy"]
