"""Imports every part's tables so ``Base.metadata`` is complete (migrations, tests)."""

from trustplane.access import models as access_models
from trustplane.alerts import models as alerts_models
from trustplane.auth import models as auth_models
from trustplane.core import models as core_models
from trustplane.directory import models as directory_models
from trustplane.discovery import models as discovery_models
from trustplane.idp import sessions as idp_sessions
from trustplane.idp.oauth import models as oauth_models
from trustplane.idp.signin import models as idp_signin_models
from trustplane.protection import models as protection_models

__all__ = [
    "access_models",
    "alerts_models",
    "auth_models",
    "core_models",
    "directory_models",
    "discovery_models",
    "idp_sessions",
    "idp_signin_models",
    "oauth_models",
    "protection_models",
]
