"""What an invocation of ``claims`` plans: one evolve run (a *cell*) per benchmark, search rule and run seed,
each with its full evolve config, and the claim-3 agents per benchmark.

Claim 1 and claim 3 use the paper's rule (``softmax``); claim 2 adds the other rules (``greedy``, ``novelty``, or
``--variants``). Every rule of a benchmark gets the same steps, suites and run seeds, so the runs of one seed
differ only in how parents are selected; each run seed has its own held-out suite, shared by all rules.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.experiments.layout import ExperimentError
from engine.experiments.settings import BenchmarkSettings

#: search rule -> evolve config overrides (``selection``); the paper's rule first
VARIANTS: dict[str, dict] = {
    "softmax": {"selection": "softmax"},
    "greedy": {"selection": "greedy"},
    "novelty": {"selection": "novelty"},
    "elite": {"selection": "elite"},
}
PAPER_RULE = "softmax"
DEFAULT_VARIANTS = ("softmax", "greedy", "novelty")
#: the baselines of the cheap default (the others call the embedded model: minutes per evaluation on a CPU)
CHEAP_SEEDS = ("no_memory", "trajectory_retrieval")
#: the evolve config's validation suite (engine.config.EvalConfig.validation_seed): never a held-out suite
VALIDATION_SEED = 500


@dataclass(frozen=True)
class Options:
    """Everything an invocation plans with (the CLI's flags, validated)."""

    benchmarks: tuple[str, ...]
    seeds: int
    steps: int
    budget_minutes: float
    backend: str
    claims: tuple[int, ...]
    variants: tuple[str, ...]
    meta_share: float
    validation_top: int | None
    all_seeds: bool
    llm_transfer: bool


def cell_key(benchmark: str, variant: str, seed: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', benchmark)}-{variant}-s{seed}"


def variants_for(claims: tuple[int, ...], variants: tuple[str, ...]) -> list[str]:
    """The search rules a benchmark's runs need: the paper's rule for claims 1 and 3, every rule for claim 2."""
    wanted = list(variants) if 2 in claims else [PAPER_RULE]
    return [v for v in VARIANTS if v in wanted]


def evolve_config(opts: Options, bench: BenchmarkSettings, variant: str, seed: int, *, runs_dir: Path,
                  seeds_dir: Path) -> dict:
    """The evolve config (a dict for engine.api.evolve) of one cell."""
    heldout = bench.heldout_seed(seed)
    if heldout in (bench.fitness_seed, VALIDATION_SEED):
        raise ExperimentError(f"{bench.name}: run seed {seed} would reuse suite {heldout} as its held-out suite "
                              "(the fitness or validation suite); change heldout_base in benchmarks.toml")
    ev = {"benchmark": bench.name, "n_train": bench.n_train, "n_test": bench.n_test, "seed": bench.fitness_seed,
          "heldout_seed": heldout, "heldout_n_test": bench.heldout_n_test}
    if opts.validation_top is not None:
        ev["validation_top"] = opts.validation_top
    return {"steps": opts.steps, "seed": seed, "budget_minutes": opts.budget_minutes, "meta_share": opts.meta_share,
            "runs_dir": str(runs_dir), "seeds_dir": str(seeds_dir), **VARIANTS[variant], "eval": ev,
            "sandbox": {"backend": opts.backend}}


def plan_cells(opts: Options, settings: dict[str, BenchmarkSettings], *, runs_dir: Path, seeds_dir: Path,
               invocation: int) -> dict[str, dict]:
    """Every cell of an invocation by key: ``{"key", "benchmark", "variant", "seed", "config", "invocation"}``."""
    cells = {}
    for name in opts.benchmarks:
        for variant in variants_for(opts.claims, opts.variants):
            for seed in range(opts.seeds):
                key = cell_key(name, variant, seed)
                cells[key] = {"key": key, "benchmark": name, "variant": variant, "seed": seed,
                              "config": evolve_config(opts, settings[name], variant, seed, runs_dir=runs_dir,
                                                      seeds_dir=seeds_dir),
                              "invocation": invocation}
    return cells


def transfer_agents(opts: Options, bench: BenchmarkSettings) -> list[dict]:
    """Claim 3's agents on ``bench``: the heuristic agent with a smaller and a larger step budget, and the LLM
    agent on a very small suite when asked for. ``protocol``: the held-out job's protocol fields replaced."""
    agents = [{"name": "weaker", "label": f"heuristic, {bench.transfer_weaker} steps", "agent": "heuristic",
               "protocol": {"step_limit": bench.transfer_weaker}},
              {"name": "stronger", "label": f"heuristic, {bench.transfer_stronger} steps", "agent": "heuristic",
               "protocol": {"step_limit": bench.transfer_stronger}}]
    if opts.llm_transfer:
        agents.append({"name": "llm", "label": f"LLM agent (embedded model), {bench.llm_n_train} train / "
                                               f"{bench.llm_n_test} test", "agent": "llm",
                       "protocol": {"n_train": bench.llm_n_train, "n_test": bench.llm_n_test}})
    return agents


def merge(plan: dict, cells: dict[str, dict]) -> list[str]:
    """Add ``cells`` to ``plan["cells"]``; a cell already planned must have the same config (its run exists).
    Returns the keys that are new."""
    new = []
    for key, cell in cells.items():
        old = plan["cells"].get(key)
        if old is None:
            plan["cells"][key] = cell
            new.append(key)
        elif old["config"] != cell["config"]:
            diff = sorted(k for k in set(old["config"]) | set(cell["config"])
                          if old["config"].get(k) != cell["config"].get(k))
            raise ExperimentError(f"run {key} is already planned in this experiment with another config "
                                  f"(differs in: {', '.join(diff)}); use another --id for other settings")
    return new


def copy_seeds(source: Path, target: Path, all_seeds: bool) -> list[str]:
    """Copy the baselines into the experiment (the runs' seeds_dir) once; returns their names. A later
    invocation keeps the copy: every run of an experiment starts from the same baselines."""
    if target.is_dir() and any(target.glob("*.py")):
        return sorted(p.stem for p in target.glob("*.py"))
    names = sorted(p.stem for p in source.glob("*.py") if not p.name.startswith("_"))
    if not all_seeds:
        names = [n for n in names if n in CHEAP_SEEDS]
    if "no_memory" not in names:
        raise ExperimentError(f"{source} has no no_memory.py: every claim is measured against no memory")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in names:
        shutil.copy2(source / f"{name}.py", tmp / f"{name}.py")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return names
