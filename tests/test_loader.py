"""Loading designs from source and the contract checks (harness.loader)."""

from __future__ import annotations

import pytest

from harness.design import CONTRACT, MemoryDesign, contract_text, memory_text
from harness.errors import ContractError, DesignLoadError
from harness.loader import load_design_file, load_design_source, source_hash

GOOD = '''
from harness.design import MemoryDesign

class Mine(MemoryDesign):
    async def retrieve(self, task):
        return {"text": "hello"}

    async def update(self, episode):
        return None
'''


def test_good_design_loads_into_its_own_module():
    cls = load_design_source(GOOD, "good")
    assert issubclass(cls, MemoryDesign) and cls.__name__ == "Mine"
    assert cls.__module__ == f"alma_design_{source_hash(GOOD)}"
    other = load_design_source(GOOD.replace("hello", "bye"), "other")
    assert other.__module__ != cls.__module__


@pytest.mark.parametrize("source, error, fragment", [
    ("class X(:\n  pass", DesignLoadError, "syntax error at line 1"),
    ("raise RuntimeError('boom at import')", DesignLoadError, "boom at import"),
    ("import no_such_module_xyz", DesignLoadError, "no_such_module_xyz"),
    ("x = 1", ContractError, "found 0"),
    (GOOD + "\nclass Second(Mine):\n    pass\n", ContractError, "found 2: Mine, Second"),
    (GOOD.replace("async def retrieve", "def retrieve"), ContractError, "Mine.retrieve must be 'async def'"),
    (GOOD.replace("def update(self, episode)", "def update(self)"), ContractError, "the contract calls it as"),
    (GOOD.replace("class Mine(MemoryDesign):", "class Mine(MemoryDesign):\n    def __init__(self, a, b):\n"
                  "        pass\n"), ContractError, "Mine.__init__ takes (self, a, b)"),
    (GOOD.replace("async def retrieve(self, task)", "@staticmethod\n    async def retrieve(task)"),
     ContractError, "plain instance method"),
])
def test_bad_designs_raise_typed_errors_naming_the_design(source, error, fragment):
    with pytest.raises(error) as info:
        load_design_source(source, "bad.py")
    assert "bad.py" in str(info.value) and fragment in str(info.value)
    assert info.value.design == "bad.py"


def test_unreadable_file_is_a_load_error(tmp_path):
    with pytest.raises(DesignLoadError, match="cannot read the file"):
        load_design_file(tmp_path / "missing.py")


def test_memory_text_and_contract_text_agree_with_contract():
    assert memory_text({}) == ""
    assert memory_text({"text": "x" * 10_000}) == "x" * CONTRACT["max_memory_chars"]
    assert memory_text({"items": [1, 2]}) == '{"items": [1, 2]}'
    text = contract_text()
    for name, spec in CONTRACT["methods"].items():
        assert f"async def {name}({', '.join(spec['params'])})" in text
    assert CONTRACT["base_module"] in text
