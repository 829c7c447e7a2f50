"""TrustPlane: a self-hosted Zero Trust control plane that speaks Microsoft Graph, SCIM and MCAS."""

__version__ = "0.1.0"
