"""``python -m sandbox.run``: evaluate one memory design in an isolated, resource-limited sandbox.

Example::

    python -m sandbox.run --backend auto --design seeds/trajectory_retrieval.py --benchmark textworld \\
        --agent heuristic --train 6 --test 4 --repeats 3 --seed 0 --out job.json

Takes the same task, agent, protocol and model flags as ``harness.evaluate``; the model flags name the
*host's* upstream, which the broker serves to the sandbox (keys never enter it). Prints the outcome, the
score and notable events; writes the :class:`sandbox.job.JobReport` with ``--out``. Exit status: 0 when the
outcome is ``ok``; 1 for any other outcome; 2 for bad arguments or a backend that cannot run here.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import uuid
from pathlib import Path

from harness.cli_common import add_job_arguments, job_from_args
from harness.errors import HarnessError
from harness.files import write_json_atomic
from harness.suites import prepare_suite
from sandbox.backend import BACKENDS, select_backend
from sandbox.broker import Broker, BrokerConfig, Budget
from sandbox.cassette import MODES
from sandbox.errors import SandboxError
from sandbox.job import JobReport, JobRunner
from sandbox.limits import Limits
from sandbox.outcome import printable

_DEFAULTS = Limits()
_NOTABLE_KINDS = {"limit", "broker", "design_error", "sandbox"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.run", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_job_arguments(parser)
    s = parser.add_argument_group("sandbox")
    s.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: docker when a daemon answers, else bubblewrap; none: UNISOLATED, development only")
    s.add_argument("--image", help="evaluation image for docker; when left out, the current content-hashed tag, "
                                   "built first if missing")
    s.add_argument("--memory-mb", type=int, default=_DEFAULTS.memory_mb, help="memory limit, scratch included")
    s.add_argument("--pids", type=int, default=_DEFAULTS.pids, help="process/thread limit")
    s.add_argument("--cpus", type=float, default=_DEFAULTS.cpus, help="CPU quota in cores")
    s.add_argument("--timeout", type=float, default=_DEFAULTS.wall_s, help="wall-clock limit in seconds")
    s.add_argument("--scratch-mb", type=int, default=_DEFAULTS.scratch_mb, help="size of the /tmp tmpfs")
    s.add_argument("--output-mb", type=int, default=_DEFAULTS.output_mb, help="cap on what the job writes out")
    s.add_argument("--retries", type=int, default=2, help="retries of infrastructure failures")
    s.add_argument("--job-id", help="job id; random when left out")
    s.add_argument("--keep", action="store_true", help="keep the host-side job directory")
    b = parser.add_argument_group("model broker")
    b.add_argument("--max-requests", type=int, default=Budget().max_requests, help="model requests per job")
    b.add_argument("--max-tokens", type=int, default=Budget().max_tokens, help="model tokens per job")
    b.add_argument("--max-concurrency", type=int, default=4, help="concurrent upstream requests")
    b.add_argument("--requests-per-minute", type=int, metavar="N",
                   help="requests per minute sent to the upstream model (the remote API's limit); requests wait, "
                        "spread evenly; unlimited when left out")
    b.add_argument("--tokens-per-minute", type=int, metavar="N",
                   help="tokens per minute sent to the upstream model (each request's maximum, corrected to its "
                        "reported usage); requests wait until they fit; unlimited when left out")
    b.add_argument("--api-key-env", default="OPENAI_API_KEY", help="host variable holding the upstream key")
    b.add_argument("--cassette", type=Path, help="cassette directory (recorded model responses)")
    b.add_argument("--cassette-mode", choices=MODES, default="auto",
                   help="record, replay (no upstream at all), auto (replay hits, record misses), off")
    parser.add_argument("--out", help="write the job report (JSON) here")
    parser.add_argument("--quiet", action="store_true", help="print only the outcome line")
    return parser


def broker_config(args: argparse.Namespace) -> BrokerConfig:
    local = args.embedder if args.embedder in ("minilm", "hashing") else None
    return BrokerConfig(chat_base_url=args.chat_base_url, local_chat_model=args.chat_model,
                        embed_base_url=args.embed_base_url, local_embedder=local, api_key_env=args.api_key_env,
                        # the names the harness sends from inside the sandbox: the only ones served
                        chat_model=args.chat_model, embed_model=None if local else args.embed_model,
                        models=[args.chat_model], cassette_dir=args.cassette,
                        cassette_mode=args.cassette_mode if args.cassette else "off",
                        max_concurrency=args.max_concurrency, requests_per_minute=args.requests_per_minute,
                        tokens_per_minute=args.tokens_per_minute, threads=args.threads)


def print_report(report: JobReport, quiet: bool) -> None:
    score = f" score={report.result.score:.4f} ±{report.result.stderr:.4f}" if report.result else ""
    print(f"outcome={report.outcome.value}{score} backend={report.backend} attempts={report.attempts} "
          f"wall={report.wall_s:.1f}s exit={report.exit_code}")
    if quiet:
        return
    if report.detail:
        print(f"  detail: {printable(report.detail)}")
    if report.hits:
        print(f"  limits hit: {', '.join(report.hits)}")
    if report.broker_usage:
        print("  broker: " + ", ".join(f"{k}={v}" for k, v in report.broker_usage.items()))
    notable = [e for e in report.events if e.get("kind") in _NOTABLE_KINDS or e.get("refused")]
    for e in notable[:20]:
        print(printable(f"  event: {e.get('kind')}/{e.get('event')} {str(e.get('detail', ''))[:160]}"))
    if len(notable) > 20:
        print(f"  ... {len(notable) - 20} more notable events (see --out)")
    if report.outcome.value != "ok" and report.stderr_tail:
        print("  stderr (tail):\n    " + "\n    ".join(printable(report.stderr_tail).strip().splitlines()[-15:]))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up (containers, cgroups, sockets)
    try:
        spec = job_from_args(args, job_id=args.job_id or f"job-{uuid.uuid4().hex[:12]}")
        limits = Limits(memory_mb=args.memory_mb, pids=args.pids, cpus=args.cpus, wall_s=args.timeout,
                        scratch_mb=args.scratch_mb, output_mb=args.output_mb)
    except OSError as exc:
        print(f"error: cannot read the design {args.design!r}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: invalid arguments: {exc}", file=sys.stderr)
        return 2
    image = args.image
    try:
        if args.backend in ("auto", "docker") and image is None:
            from sandbox.backend import docker_available

            if args.backend == "docker" or docker_available():
                from sandbox.image import build_image
                from sandbox.plugins import plugin_projects

                image = build_image(with_dirs=plugin_projects(spec))  # the job's plug-ins go into the image
        backend = select_backend(args.backend, image=image)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with Broker(broker_config(args)) as broker:
            runner = JobRunner(backend, broker, limits=limits, prepare=prepare_suite,
                               budget=Budget(max_requests=args.max_requests, max_tokens=args.max_tokens),
                               cache_root=Path(args.cache_dir) if args.cache_dir else None, retries=args.retries,
                               keep_dirs=args.keep)
            report = runner.run(spec)
    except (SandboxError, HarnessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        backend.close()
    print_report(report, args.quiet)
    if args.out:
        write_json_atomic(args.out, report.model_dump(mode="json"))
        if not args.quiet:
            print(f"  wrote {args.out}")
    return 0 if report.outcome.value == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
