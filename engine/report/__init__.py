"""``python -m engine.report RUN_DIR``: the self-contained HTML page of a run (:mod:`~engine.report.page`), its
sections (:mod:`~engine.report.html`) and charts (:mod:`~engine.report.svg`)."""

from engine.report.page import ReportError, write_report

__all__ = ["ReportError", "write_report"]
