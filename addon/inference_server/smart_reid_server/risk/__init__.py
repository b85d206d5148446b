"""Risk assessment per visit: facts collected as a visit happens, scored by fixed rules.

``facts`` gathers what happened (path, dwell, company, identity, history, time of day),
``rules`` turns the facts into a score, a level and the reasons behind it, and ``monitor``
decides when a visit is assessed (at its start, when its level rises, every ``risk.interim_s``
while it lasts, and once more when it ends) and keeps the latest assessment with the visit.
"""

from .facts import CameraStay, IdentityStatus, VisitFacts
from .monitor import RiskMonitor
from .rules import LEVELS, Assessment, Reason, RiskConfig, assess

__all__ = [
    "LEVELS",
    "Assessment",
    "CameraStay",
    "IdentityStatus",
    "Reason",
    "RiskConfig",
    "RiskMonitor",
    "VisitFacts",
    "assess",
]
