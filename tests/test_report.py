"""The run report (engine.report.page): built from a small archive made with the Archive API, checked with an HTML
parser and rendered in headless Chromium (screenshot + DOM after scripts ran).

Chromium is Debian's ``chromium`` package. Without it the browser test is skipped locally and fails under
``CI=true``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from archive import Archive
from engine.report.page import ReportError, main, read_run, write_report

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
BENCH = "babaisai"
XSS = '"<script>alert(1)</script>" & <b>'


def _id(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _add(a: Archive, source: str, **kw) -> str:
    design_id = _id(source)
    a.add_design(design_id, source, **kw)
    return design_id


def _score(a: Archive, design_id: str, score: float, *, split: str = "id", stderr: float = 0.05,
           tokens: int = 0) -> None:
    if a.get(design_id).status != "evaluating":
        a.set_status(design_id, "evaluating")
    ev = a.begin_evaluation(design_id, BENCH, split)
    usage = {"qwen2.5-coder-0.5b": {"prompt_tokens": tokens, "completion_tokens": tokens // 10}} if tokens else None
    a.finish_evaluation(ev.id, outcome="ok", score=score, stderr=stderr, successes={"t0": score, "t1": 1.0},
                        usage=usage, wall_s=12.5)
    a.set_status(design_id, "evaluated")


def build_run(run_dir: Path) -> dict[str, str]:
    """A run of six steps: three seeds (one the no-memory baseline), a meta-agent child with analysis and plan,
    a mutation, a crossover, a hostile swap, an invalid proposal and a failed evaluation."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(f'steps = 6\n\n[eval]\nbenchmark = "{BENCH}"\nsplit = "id"\n'
                                         'agent = "heuristic"\n')
    ids: dict[str, str] = {}
    with Archive.open(run_dir) as a:
        for name in ("no_memory", "trajectory_retrieval", "reasoning_bank"):
            ids[name] = _add(a, (SEEDS / f"{name}.py").read_text(), proposer="seed", name=name, generation=0)
        a.set_baseline(ids["no_memory"])
        _score(a, ids["no_memory"], 0.20, tokens=900)
        _score(a, ids["trajectory_retrieval"], 0.35, tokens=1200)
        _score(a, ids["reasoning_bank"], 0.30, tokens=1500)
        _score(a, ids["trajectory_retrieval"], 0.25, split="ood")
        _score(a, ids["no_memory"], 0.15, split="ood")
        a.set_audit(ids["trajectory_retrieval"], "clean")
        traj = a.get(ids["trajectory_retrieval"]).source
        meta_src = traj.replace("TOP_K = 2", "TOP_K = 4").replace(
            "WIN_BONUS = 0.15", f"WIN_BONUS = 0.25\nNOTE = {XSS[:-6]!r}  # a < b & c")
        ids["meta"] = _add(a, meta_src, proposer="meta_agent", parents=[ids["trajectory_retrieval"]], step=1,
                           name="trajectory_retrieval>meta1.0", analysis="Retrieval shows too few exemplars; "
                           "failures <dominate> & repeat.", plan="1. Raise TOP_K to 4.\n2. Favour wins more.",
                           tokens={"meta-model": {"total_tokens": 4321}}, wall_s=30.0)
        _score(a, ids["meta"], 0.45, tokens=2000)
        _score(a, ids["meta"], 0.30, split="ood")
        a.set_audit(ids["meta"], "clean")
        ids["mutate"] = _add(a, meta_src.replace("TOP_K = 4", "TOP_K = 5"), proposer="mutate:constants",
                             parents=[ids["meta"]], step=2, name="meta1+mutate:constants")
        _score(a, ids["mutate"], 0.40)
        a.set_audit(ids["mutate"], "suspicious", "file_read: /etc/passwd")
        ids["invalid"] = _add(a, meta_src + "\nimport socket\n", proposer="meta_agent", parents=[ids["meta"]],
                              step=3, name="meta1>meta3.0")
        a.set_findings(ids["invalid"], [{"code": "import", "line": 300, "message": "socket is not allowed"}])
        a.set_status(ids["invalid"], "invalid", "import of socket refused")
        ids["crossover"] = _add(a, meta_src + "\n# crossover with reasoning_bank\n", proposer="crossover",
                                parents=[ids["meta"], ids["reasoning_bank"]], step=4, name="meta1+crossover")
        _score(a, ids["crossover"], 0.55, stderr=0.04, tokens=2500)
        a.set_audit(ids["crossover"], "clean")
        ids["hostile"] = _add(a, meta_src + "\n# swap\n", proposer="swap:retrieve",
                              parents=[ids["mutate"], ids["reasoning_bank"]], step=5, name="mutate+swap:retrieve")
        _score(a, ids["hostile"], 0.90)
        a.set_audit(ids["hostile"], "hostile", "network: connect refused")
        ids["failed"] = _add(a, meta_src + "\n# times out\n", proposer="mutate:constants", parents=[ids["crossover"]],
                             step=6, name="crossover+mutate:constants")
        a.set_status(ids["failed"], "evaluating")
        ev = a.begin_evaluation(ids["failed"], BENCH, "id")
        a.finish_evaluation(ev.id, outcome="timeout", error="timeout: wall limit 900 s", wall_s=900.0)
        a.set_status(ids["failed"], "failed", "timeout: wall limit 900 s")
        a.set_audit(ids["failed"], "suspicious", "outcome timeout")
        a.set_meta("tokens_used", 9999)
        for step in range(1, 7):
            a.record_event("step_done", {}, step=step)
    return ids


class Elements(HTMLParser):
    """Every element as (tag, attrs, text directly inside it), in document order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.items: list[dict] = []
        self.stack: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        item = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": [s["tag"] for s in self.stack]}
        item["classes"] = set((item["attrs"].get("class") or "").split())
        item["ancestors"] = list(self.stack)
        self.items.append(item)
        if tag not in ("meta", "br", "img", "input", "link", "hr"):
            self.stack.append(item)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1]["tag"] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for item in self.stack:
            item["text"] += data

    def find(self, tag=None, cls=None, inside=None, **attrs):
        out = []
        for e in self.items:
            if tag and e["tag"] != tag or cls and cls not in e["classes"]:
                continue
            if any(e["attrs"].get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            if inside and not any(p is inside for p in e["ancestors"]):
                continue
            out.append(e)
        return out


def check_dom(html: str, ids: dict[str, str]) -> Elements:
    """What both the written file and the DOM after rendering must hold."""
    doc = Elements(html)
    [svg] = doc.find("svg", id="lineage")
    nodes = {e["attrs"]["data-design"]: e for e in doc.find("g", "node", inside=svg)}
    assert set(nodes) == set(ids.values())
    assert "invalid" in nodes[ids["invalid"]]["classes"]
    assert "proposer-seed" in nodes[ids["no_memory"]]["classes"]
    assert "proposer-crossover" in nodes[ids["crossover"]]["classes"]
    assert "proposer-swap" in nodes[ids["hostile"]]["classes"]
    assert "proposer-mutate" in nodes[ids["mutate"]]["classes"]
    assert "audit-hostile" in nodes[ids["hostile"]]["classes"]
    assert "audit-suspicious" in nodes[ids["mutate"]]["classes"]
    assert "best" in nodes[ids["crossover"]]["classes"]  # the hostile 0.90 is never best
    edges = {(e["attrs"]["data-parent"], e["attrs"]["data-child"]) for e in doc.find("path", "edge", inside=svg)}
    assert (ids["meta"], ids["crossover"]) in edges and (ids["reasoning_bank"], ids["crossover"]) in edges
    assert len(edges) == 8
    [chart] = doc.find("svg", id="best-history")
    assert chart["attrs"]["data-split"] == "id"
    baselines = {e["attrs"]["data-design"] for e in doc.find("line", "baseline", inside=chart)}
    assert baselines == {ids["no_memory"], ids["trajectory_retrieval"], ids["reasoning_bank"]}
    assert doc.find("path", "best-line", inside=chart)
    [table] = doc.find("table", id="scores")
    rows = {e["attrs"]["data-design"]: e for e in doc.find("tr", "design-row", inside=table)}
    assert set(rows) == set(ids.values())
    cells = {(c["attrs"]["data-benchmark"], c["attrs"]["data-split"]): c["text"]
             for c in doc.find("td", "score", inside=rows[ids["meta"]])}
    assert cells == {(BENCH, "id"): "0.450 \u00b1 0.050", (BENCH, "ood"): "0.300 \u00b1 0.050"}
    assert "+0.250" in rows[ids["meta"]]["text"] and "+0.150" in rows[ids["meta"]]["text"]  # reward vs no memory
    return doc


def test_report_html(tmp_path):
    ids = build_run(tmp_path / "run")
    path = write_report(tmp_path / "run")
    assert path == tmp_path / "run" / "report.html"
    html = path.read_text(encoding="utf-8")
    doc = check_dom(html, ids)
    # the diff of the meta-agent child to its seed parent: escaped, with the changed lines
    [diff] = doc.find("pre", "diff", data_child=ids["meta"])
    assert diff["attrs"]["data-parent"] == ids["trajectory_retrieval"]
    added = [e["text"] for e in doc.find("span", "add", inside=diff)]
    removed = [e["text"] for e in doc.find("span", "del", inside=diff)]
    assert "+TOP_K = 4  # trajectories shown per task" in added and "-TOP_K = 2  # trajectories shown per task" in removed
    assert any("<script>alert(1)</script>" in line for line in added)  # shown as text ...
    assert len(doc.find("script")) == 1  # ... never as an element
    assert "&lt;script&gt;" in html
    # a crossover has a diff to each parent; a seed has none but its code
    assert {e["attrs"]["data-parent"] for e in doc.find("pre", "diff", data_child=ids["crossover"])} == \
        {ids["meta"], ids["reasoning_bank"]}
    [seed] = doc.find("section", "design", id=f"design-{ids['no_memory']}")
    assert not doc.find("pre", "diff", inside=seed) and doc.find("pre", "code", inside=seed)
    [meta] = doc.find("section", "design", id=f"design-{ids['meta']}")
    notes = " ".join(e["text"] for e in doc.find("div", "notes", inside=meta))
    assert "failures <dominate> & repeat" in notes and "Raise TOP_K to 4" in notes
    [invalid] = doc.find("section", "design", id=f"design-{ids['invalid']}")
    assert "socket is not allowed" in invalid["text"]
    # costs: tokens per model and wall time
    [costs] = doc.find("table", id="costs")
    models = {e["attrs"]["data-model"] for e in doc.find("tr", inside=costs) if "data-model" in e["attrs"]}
    assert models == {"meta-model", "qwen2.5-coder-0.5b"}
    assert "4,321" in costs["text"]
    assert "9,999" in doc.find("dl", id="cost-summary")[0]["text"]
    # self-contained: nothing is fetched from elsewhere
    assert not doc.find("link") and all("src" not in e["attrs"] for e in doc.items)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert not list(path.parent.glob(".report.html.*"))  # no temporary file left behind


def test_report_cli_and_errors(tmp_path, capsys):
    ids = build_run(tmp_path / "run")
    out = tmp_path / "elsewhere" / "r.html"
    assert main([str(tmp_path / "run"), "--out", str(out)]) == 0
    assert out.is_file() and "report:" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="not a run directory"):
        read_run(tmp_path / "empty")
    assert not (tmp_path / "empty" / "archive.sqlite").exists()  # the report never creates an archive
    # read-only while the run holds the lock and keeps writing
    with Archive.open(tmp_path / "run", lock=True) as live:
        live.record_event("step_done", {}, step=7)
        view = read_run(tmp_path / "run")
        assert view.steps_done == 7 and len(view.designs) == len(ids)
        write_report(tmp_path / "run")


def test_report_of_empty_run(tmp_path):
    with Archive.open(tmp_path / "run"):
        pass
    html = write_report(tmp_path / "run").read_text()
    assert '<svg id="lineage"' in html and '<table id="scores"' in html


# ------------------------------------------------------------------------------------------------ browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = "headless Chromium is not installed: apt-get install -y --no-install-recommends chromium"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def decode_png(data: bytes) -> np.ndarray:
    """The pixels (height x width x channels) of a non-interlaced 8-bit RGB/RGBA PNG, as Chromium writes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and not interlace
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), 1 + width * bpp
    prev, out = np.zeros(width * bpp, np.uint8), []
    for y in range(height):
        kind, line = raw[y * stride], np.frombuffer(raw, np.uint8, width * bpp, y * stride + 1).copy()
        if kind == 1:  # sub
            line = (np.cumsum(line.reshape(width, bpp).astype(np.uint32), axis=0) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # up
            line = line + prev
        elif kind in (3, 4):  # average, paeth: sequential along the row
            cur, up = bytearray(line.tobytes()), prev.tobytes()
            for i in range(len(cur)):
                left, ul = (cur[i - bpp], up[i - bpp]) if i >= bpp else (0, 0)
                if kind == 3:
                    pred = (left + up[i]) >> 1
                else:
                    p = left + up[i] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else ul
                cur[i] = (cur[i] + pred) & 255
            line = np.frombuffer(bytes(cur), np.uint8)
        out.append(line)
        prev = line
    return np.stack(out).reshape(height, width, bpp)[..., :3]


def pixels_of(img: np.ndarray, colour: str) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.uint8)
    return int((img == rgb).all(axis=2).sum())


def test_report_renders_in_chromium(tmp_path):
    browser = chromium()
    ids = build_run(tmp_path / "run")
    path = write_report(tmp_path / "run")
    shot = tmp_path / "report.png"
    proc = run_chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1400,2000",
                        "--hide-scrollbars", path.resolve().as_uri())
    assert shot.is_file(), f"no screenshot: rc {proc.returncode}\n{proc.stderr[-3000:]}"
    img = decode_png(shot.read_bytes())
    assert img.shape == (2000, 1400, 3)
    colours = np.unique(img.reshape(-1, 3), axis=0)
    ink = (img < 235).any(axis=2)  # not (near) white
    assert len(colours) > 500 and ink.mean() > 0.03, (len(colours), ink.mean())
    assert min(ink[i:i + 500].mean() for i in range(0, 2000, 500)) > 0.005  # content all the way down
    assert pixels_of(img, "#24292f") > 20_000  # the header bar
    assert pixels_of(img, "#f59e0b") > 200  # the best design's halo and line in the lineage tree
    assert pixels_of(img, "#cf222e") > 500  # the best-score line of the chart
    if os.environ.get("ALMA_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["ALMA_REPORT_SCREENSHOT"])
    # the DOM after the page's own script ran still holds the lineage nodes and the table
    proc = run_chromium(browser, tmp_path / "profile-dom", "--dump-dom", path.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'data-js="ready"' in proc.stdout, "the page's script did not run to the end"
    check_dom(proc.stdout, ids)
