# ruff: noqa: UP006, UP035, UP045, B905 -- written in the official ALMA code's style (typing.Dict & co.)
"""A memory design in the shape of the official ALMA code that alma-engine cannot convert (tests only).

It keeps a networkx graph and a Chroma vector store, reads the official runner's per-user recorder field,
calls an async layer from a plain ``def`` without ``await`` and starts its own event loop.
"""

import asyncio
import os
from dataclasses import dataclass
from typing import Dict

import networkx as nx
from agents.memo_structure import MemoStructure, Sub_memo_layer
from eval_envs.base_envs import Basic_Recorder
from langchain_chroma import Chroma
from utils.hire_agent import Embedding


@dataclass
class RoomGraphLayer(Sub_memo_layer):
    layer_intro: str = "Rooms and the moves between them."

    def __post_init__(self):
        self.database = nx.DiGraph()

    async def retrieve(self, room: str = "", **kwargs) -> Dict:
        return {"exits": list(self.database.successors(room)) if room in self.database else []}

    async def update(self, path=(), **kwargs) -> None:
        for a, b in zip(path, path[1:]):
            self.database.add_edge(a, b)


class GraphChromaMemo(MemoStructure):
    def __init__(self, persist_directory: str):
        super().__init__()
        self.rooms = RoomGraphLayer()
        self.store = Chroma(collection_name="tasks", persist_directory=persist_directory,
                            embedding_function=Embedding())
        os.environ.setdefault("OPENAI_API_KEY", "sk-...")

    async def general_retrieve(self, recorder: Basic_Recorder) -> Dict:
        user = recorder.user_id
        docs = self.store.similarity_search(recorder.init["long_term_context"], k=3)
        exits = await self.rooms.retrieve(room=recorder.init.get("obs", ""))
        return {"user": user, "similar": [d.page_content for d in docs], **exits}

    def general_update(self, recorder: Basic_Recorder) -> None:
        path = [step["obs"][:40] for step in recorder.steps]
        self.rooms.update(path=path)
        asyncio.run(self.store.aadd_texts([recorder.init.get("goal", "")]))
