"""A design's audit: the runtime verdict from a job's events (:mod:`~engine.audit.verdict`) and the static half
read from its source (:mod:`~engine.audit.static`)."""

from engine.audit.static import static_audit
from engine.audit.verdict import full_verdict, verdict

__all__ = ["full_verdict", "static_audit", "verdict"]
