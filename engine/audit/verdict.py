"""A design's audit verdict: ``clean``, ``suspicious`` or ``hostile``, with the reasons.

:func:`verdict` (used by the evolve loop after every evaluation) reads the runtime events of a job: the
worker's audit hooks (:mod:`harness.isolation.audit`) and the sandbox's limit hits.

``hostile``: it tried something refused to a design (network, subprocess, fork, ctypes, signals, tampering with
the interpreter, its audit hook or its channel, writing outside its scratch directory), read a file outside the
allowed roots and outside the job's private ``/tmp`` (host files, the game cache with the held-out tasks, the job
spec), rebound shared objects of its interpreter (``tamper``: builtins, ``json``, the harness's classes), left
processes running after a call (``process``), produced a result that does not add up (``integrity``), or
exhausted the pids limit. ``suspicious``: it imported risky modules, read files elsewhere in the job's private
``/tmp``, left files outside its scratch or code files in it, asked the broker for something it refuses,
crashed the harness or its own process, printed terminal control sequences, kept working between calls, or hit
the memory, time, output or scratch limit. ``clean``: none of these.

The hooks that report most of these run inside the design's own process and only warn: a design can switch
them off (the canary then reports ``tamper``). What protects the score is the process and uid boundary; the
``process``, ``integrity`` and limit events come from outside the design's process.

The replay (:mod:`engine.replay.cli`) adds the static half (:func:`engine.audit.static.static_audit`) with
:func:`full_verdict` -- static safety findings alone make a design at most ``suspicious``, never ``hostile``:
intent shows at run time -- and summarises the run with :func:`runtime_summary`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HOSTILE_KINDS = frozenset({"network", "subprocess", "fork", "ctypes", "signal", "tamper", "file_write",
                           "file_read", "process", "integrity"})
#: ``output``: terminal control sequences in the design's output; ``worker``: its process died mid-call
SUSPICIOUS_KINDS = frozenset({"import", "output", "worker"})
#: broker events that say the job asked for something the broker does not give
SUSPICIOUS_BROKER = frozenset({"refused"})
HOSTILE_OUTCOMES = frozenset({"pids_exhausted"})
SUSPICIOUS_OUTCOMES = frozenset({"oom", "timeout", "crashed", "output_exceeded"})
#: sandbox limit events (``{"kind": "limit", "event": NAME}``) and what they say about a design
HOSTILE_LIMITS = frozenset({"pids"})
SUSPICIOUS_LIMITS = frozenset({"oom", "timeout", "cpu_time", "output", "scratch_full", "background_cpu"})
#: reads here are the job's own private tmpfs (other phases' scratch copies, the harness's temp files)
PRIVATE_TMP = "/tmp/"


def _refused(e: dict[str, Any]) -> bool:
    return bool(e.get("refused", True))


def verdict(events: Iterable[dict[str, Any]], outcome: str = "ok") -> tuple[str, list[str]]:
    """(verdict, reasons) for a job's events and outcome."""
    hostile, suspicious = [], []
    for e in events:
        kind = str(e.get("kind", ""))
        name = str(e.get("event", ""))
        detail = str(e.get("detail", ""))
        what = f"{kind}: {name} {detail[:120]}".strip()
        if kind == "file_read" and detail.startswith(PRIVATE_TMP):
            suspicious.append(what)
        elif kind == "file_read" or (kind in HOSTILE_KINDS and _refused(e)):
            hostile.append(what)
        elif kind in SUSPICIOUS_KINDS or kind in HOSTILE_KINDS:
            suspicious.append(what)
        elif kind == "broker" and name in SUSPICIOUS_BROKER:
            suspicious.append(what)
        elif kind == "limit" and name in HOSTILE_LIMITS:
            hostile.append(f"limit: {name} (the pids limit refused a fork) {detail[:100]}".strip())
        elif kind == "limit" and name in SUSPICIOUS_LIMITS:
            suspicious.append(f"limit: {name} {detail[:100]}".strip())
    if outcome in HOSTILE_OUTCOMES:
        hostile.append(f"outcome {outcome}")
    elif outcome in SUSPICIOUS_OUTCOMES:
        suspicious.append(f"outcome {outcome}")
    hostile, suspicious = list(dict.fromkeys(hostile)), list(dict.fromkeys(suspicious))
    if hostile:
        return "hostile", hostile[:20]
    if suspicious:
        return "suspicious", suspicious[:20]
    return "clean", []


def full_verdict(events: Iterable[dict[str, Any]], outcome: str, static: dict[str, Any] | None = None
                 ) -> tuple[str, list[str]]:
    """The runtime :func:`verdict`, raised to ``suspicious`` by static risks (``static["risks"]``, see
    :func:`engine.audit.static.static_audit`). Reasons say which half found them."""
    level, reasons = verdict(events, outcome)
    reasons = [f"runtime {r}" for r in reasons]
    risks = list((static or {}).get("risks", []))
    if risks and level == "clean":
        level = "suspicious"
    return level, (reasons + risks)[:30]


def _stats(values: list[float]) -> dict[str, float | int]:
    return {"calls": len(values), "total_s": round(sum(values), 4),
            "mean_s": round(sum(values) / len(values), 4) if values else 0.0,
            "max_s": round(max(values), 4) if values else 0.0}


def runtime_summary(report: dict[str, Any]) -> dict[str, Any]:
    """What the job did, from its :class:`sandbox.job.JobReport` (as a dict): outcome, time, memory, events by
    kind, tokens per model, and the time spent in the design's ``retrieve`` and ``update``."""
    events = list(report.get("events") or [])
    grouped: dict[str, list[str]] = {}
    for e in events:
        kind = str(e.get("kind", "other"))
        key = {"fork": "processes", "subprocess": "processes", "limit": "limits"}.get(kind, kind)
        grouped.setdefault(key, []).append(f"{e.get('event', '')} {str(e.get('detail', ''))[:160]}".strip())
    result = report.get("result") or {}
    episodes = result.get("episodes") or []
    retrieve = [float(e.get("retrieve_s") or 0.0) for e in episodes]
    update = [float(e.get("update_s") or 0.0) for e in episodes
              if e.get("phase") == "collect" or float(e.get("update_s") or 0.0) > 0]
    return {
        "outcome": str(report.get("outcome")), "exit_code": report.get("exit_code"),
        "detail": report.get("detail", ""), "backend": report.get("backend"),
        "wall_s": round(float(report.get("wall_s") or 0.0), 3),
        "cpu_s": None if report.get("cpu_s") is None else round(report["cpu_s"], 3),
        "memory_peak_mb": report.get("memory_peak_mb"), "limits": report.get("limits"),
        "limit_hits": list(report.get("hits") or []),
        "events": grouped,
        "tokens": result.get("usage") or {}, "broker": report.get("broker_usage") or {},
        "design_time": {"retrieve": _stats(retrieve), "update": _stats(update)},
        "episodes": len(episodes), "design_errors": int(result.get("design_errors") or 0),
    }


def runtime_lines(runtime: dict[str, Any]) -> list[str]:
    """:func:`runtime_summary` as short readable lines."""
    r = runtime
    cpu = "n/a" if r.get("cpu_s") is None else f"{r['cpu_s']:.2f} s"
    mem = "n/a" if r.get("memory_peak_mb") is None else f"{r['memory_peak_mb']:.0f} MB"
    lines = [f"outcome: {r['outcome']} (exit {r.get('exit_code')}) on {r.get('backend')}; wall {r['wall_s']:.2f} s, "
             f"cpu {cpu}, peak memory {mem}"]
    if r.get("detail"):
        lines.append(f"detail: {r['detail'][:300]}")
    lim = r.get("limits") or {}
    if lim:
        lines.append(f"limits: {lim.get('memory_mb')} MB, {lim.get('pids')} pids, {lim.get('cpus')} cpus, "
                     f"{lim.get('wall_s'):g} s" + (f"; hit: {', '.join(r['limit_hits'])}" if r["limit_hits"] else ""))
    if not r["events"]:
        lines.append("events: none (no file access outside scratch, no network, no subprocess, no limit hit)")
    for kind, items in sorted(r["events"].items()):
        lines.append(f"events {kind} ({len(items)}): " + "; ".join(items[:4])[:400])
    tokens = ", ".join(f"{m}: {c.get('prompt_tokens', 0)} prompt + {c.get('completion_tokens', 0)} completion "
                       f"in {c.get('requests', 0)} requests" for m, c in sorted(r["tokens"].items()))
    lines.append("tokens: " + (tokens or "none"))
    b = r.get("broker") or {}
    if b:
        lines.append(f"broker: {b.get('requests', 0)} requests, {b.get('cassette_hits', 0)} from the cassette")
    for phase in ("retrieve", "update"):
        s = r["design_time"][phase]
        lines.append(f"{phase}: {s['calls']} calls, total {s['total_s']:.3f} s, mean {s['mean_s']:.3f} s, "
                     f"max {s['max_s']:.3f} s")
    lines.append(f"episodes: {r['episodes']}, with a design error: {r['design_errors']}")
    return lines
