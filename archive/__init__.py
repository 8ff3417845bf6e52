"""The run archive: storage (SQLite), novelty and parent selection. A leaf package: stdlib and numpy only."""

from archive.errors import (
    AmbiguousDesign,
    ArchiveError,
    ArchiveLocked,
    DuplicateDesign,
    DuplicateEvaluation,
    InvalidTransition,
    UnknownDesign,
)
from archive.novelty import Descriptor, NoveltyConfig, compute_novelty, task_successes
from archive.records import Design, Evaluation, Event, Score
from archive.selection import ParentSelector, elite_probabilities, selection_probabilities
from archive.store import Archive

__all__ = [
    "AmbiguousDesign", "Archive", "ArchiveError", "ArchiveLocked", "Descriptor", "Design", "DuplicateDesign",
    "DuplicateEvaluation", "Evaluation", "Event", "InvalidTransition", "NoveltyConfig", "ParentSelector",
    "Score", "UnknownDesign", "compute_novelty", "elite_probabilities", "selection_probabilities",
    "task_successes",
]
