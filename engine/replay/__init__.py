"""``python -m engine.replay RUN_DIR DESIGN_ID``: re-run an archived evaluation exactly (the command:
:mod:`~engine.replay.cli`), after integrity checks (:mod:`~engine.replay.checks`), with an audit and a report for
a person (:mod:`~engine.replay.text`)."""
