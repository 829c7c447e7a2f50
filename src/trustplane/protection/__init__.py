"""Identity protection: the sign-in log, risk detections from one detector interface (``detectors/``), the
per-user feature statistics behind unfamiliar sign-in properties (``features.py``), IP intelligence
(``ipintel.py``), user-risk aggregation with riskState transitions and history (``service.py``), and the
ingestion of sign-in events from other identity providers (``ingest.py``). Graph face:
``graph/identity_protection.py``."""
