# ruff: noqa: UP006, UP035, UP045, B905 -- written in the official ALMA code's style (typing.Dict & co.)
"""A memory design in the shape of the official ALMA code (written for alma-engine's tests).

Two layers: successful action sequences keyed by the words of the goal, and openings that led nowhere.
``general_retrieve`` reads only ``recorder.init``; ``general_update`` reads ``init``, ``steps`` and ``reward``.
No model calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List

from agents.memo_structure import MemoStructure, Sub_memo_layer
from eval_envs.base_envs import Basic_Recorder


def words(text: str) -> set:
    return set(re.findall(r"[a-z]+", (text or "").lower()))


@dataclass
class SolvedPlansLayer(Sub_memo_layer):
    layer_intro: str = "Action sequences of solved tasks, keyed by the words of their goal."
    database: List[Dict] = field(default_factory=list)

    async def retrieve(self, goal: str = "", top_k: int = 2, **kwargs) -> List[Dict]:
        wanted = words(goal)
        ranked = sorted(self.database, key=lambda item: -len(wanted & set(item["words"])))
        return ranked[:top_k]

    async def update(self, goal: str = "", actions: List[str] = (), **kwargs) -> None:
        self.database.append({"goal": goal, "words": sorted(words(goal)), "actions": list(actions)})


@dataclass
class DeadEndLayer(Sub_memo_layer):
    layer_intro: str = "First moves of failed tasks, counted."
    database: Dict[str, int] = field(default_factory=dict)

    def worst(self, n: int = 3) -> List[str]:
        return [move for move, _ in sorted(self.database.items(), key=lambda kv: -kv[1])[:n]]

    async def retrieve(self, **kwargs) -> List[str]:
        return self.worst()

    async def update(self, actions: List[str] = (), **kwargs) -> None:
        if actions:
            self.database[actions[0]] = self.database.get(actions[0], 0) + 1


class TrajectoryNotesMemo(MemoStructure):
    def __init__(self):
        super().__init__()
        self.plans = SolvedPlansLayer()
        self.dead_ends = DeadEndLayer()

    async def general_retrieve(self, recorder: Basic_Recorder) -> Dict:
        goal = recorder.init.get("goal", "")
        plans = await self.plans.retrieve(goal=goal)
        avoid = await self.dead_ends.retrieve()
        if not plans and not avoid:
            return {}
        lines = [f"A similar solved task ({p['goal'][:60]}) was solved by: {' -> '.join(p['actions'])}" for p in plans]
        if avoid:
            lines.append("Openings that often failed: " + ", ".join(avoid))
        return {"text": "\n".join(lines)}

    async def general_update(self, recorder: Basic_Recorder) -> None:
        actions = [step["action"] for step in recorder.steps]
        if recorder.reward >= 1.0:
            await self.plans.update(goal=recorder.init["goal"], actions=actions)
        else:
            await self.dead_ends.update(actions=actions)
