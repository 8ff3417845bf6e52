"""Running a memory design apart from the environment, agent and scorer (score integrity).

The design runs in a worker process (``python -m harness.isolation.worker``) that talks to the harness over
two private pipes with JSON lines. The worker has no model client of its own: its toolkit forwards LLM and
embedding calls to the harness, which meters them. Python audit hooks in the worker record security-relevant
events and refuse subprocesses, sockets, ctypes and writes outside the design's scratch directory. When the
harness runs as root, the worker also drops to its own uid (``ALMA_DESIGN_UID``, default 65534).
"""
