# ruff: noqa: UP006, UP035, UP045, B905 -- written in the official ALMA code's style (typing.Dict & co.)
"""A memory design in the shape of the official ALMA code (written for alma-engine's tests).

An LLM distils one insight per finished task (``Agent`` with an ``output_schema``); insights are embedded
(``Embedding``) and the closest ones to the new task are retrieved. The layer's lookup is a plain ``def`` (called
without ``await``); the recorder is typed with an aliased import.
"""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from agents.memo_structure import MemoStructure, Sub_memo_layer
from eval_envs.base_envs import Basic_Recorder as Recorder
from utils.hire_agent import Agent, Embedding

INSIGHT_SCHEMA = {
    "insight": {"type": "string", "description": "one transferable lesson for similar tasks"},
}


@dataclass
class InsightLayer(Sub_memo_layer):
    layer_intro: str = "Insights with their embeddings."
    database: List[Dict] = field(default_factory=list)
    lock: Optional[asyncio.Lock] = None

    def count(self) -> int:
        return len(self.database)

    async def retrieve(self, query: str = "", top_k: int = 2, **kwargs) -> List[str]:
        if not self.database:
            return []
        embedder = Embedding(model="text-embedding-3-small")
        query_vec = await embedder.get_embedding(query)
        scores = await Embedding.compute_one_to_group_similarity(query_vec, [d["vec"] for d in self.database])
        ranked = sorted(zip(scores, self.database), key=lambda pair: -pair[0])
        return [d["insight"] for _, d in ranked[:top_k]]

    async def update(self, insight: str = "", **kwargs) -> None:
        if not insight:
            return
        vec = await Embedding().get_embedding(insight)
        self.database.append({"insight": insight, "vec": vec})


class InsightBankMemo(MemoStructure):
    def __init__(self):
        super().__init__()
        self.insights = InsightLayer()
        self.judge = Agent(model="gpt-4o-mini", system_prompt="You distil lessons from game trajectories.",
                           output_schema=INSIGHT_SCHEMA)

    async def general_retrieve(self, recorder: Recorder) -> Dict:
        query = recorder.init.get("goal", "") + " " + recorder.init.get("obs", "")[:200]
        found = await self.insights.retrieve(query=query)
        return {"insights": found, "known": self.insights.count()} if found else {}

    async def general_update(self, recorder: Recorder) -> None:
        trajectory = json.dumps(recorder.steps[-12:])
        outcome = "solved" if recorder.reward >= 1.0 else "failed"
        reply = await self.judge.ask(f"Task: {recorder.init['goal']}\nOutcome: {outcome}\nSteps: {trajectory}")
        await self.insights.update(insight=str(reply.get("insight", ""))[:300])
