"""Recipe fuzzing: random and mutated YAML never crashes, hangs or builds Python objects.

Every input either validates or yields located problems (FILE:LINE:COL: ...), as `bakeoff validate` prints
them with exit code 2.
"""

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bakeoff.recipe import Recipe, RecipeError, load_recipe

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [p.read_text() for p in sorted((ROOT / "recipes").glob("*.yaml"))]
LOCATED = re.compile(r"^.+:\d+:\d+: .+", re.S)

pytestmark = pytest.mark.reliability

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
_keys = st.sampled_from(
    [
        "name",
        "task",
        "labels",
        "eval",
        "questions",
        "candidates",
        "agent",
        "k",
        "examples",
        "model",
        "generation",
        "max_new_tokens",
        "corpus",
        "paths",
        "chunk",
        "x",
        "fewshot",
        "base_model",
        "metrics",
        "limit",
    ]
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=25,
)


def _yaml_of(value, indent=0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "\n".join(
            f"{pad}{k}:"
            + (("\n" + _yaml_of(v, indent + 1)) if isinstance(v, dict | list) and v else " " + _yaml_of(v))
            for k, v in value.items()
        )
    if isinstance(value, list):
        if not value:
            return "[]"
        return "\n".join(f"{pad}- " + _yaml_of(v, indent + 1).lstrip() for v in value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return str(value).lower() if isinstance(value, bool) else str(value)


@st.composite
def mutated(draw) -> bytes:
    base = bytearray(draw(st.sampled_from(SEEDS)).encode())
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "tag", "alias", "bytes"]))
        pos = draw(st.integers(0, max(0, len(base) - 1)))
        if op == "delete":
            del base[pos : pos + draw(st.integers(1, 40))]
        elif op == "insert":
            base[pos:pos] = draw(
                st.sampled_from(
                    [
                        b": ",
                        b"\n  - ",
                        b"[",
                        b"{",
                        b"&a ",
                        b"*a",
                        b"\t",
                        b"'",
                        b'"',
                        b"#",
                        b"\n    k: lots",
                        b"\n    bogus: 1",
                        b"---\n",
                        b"? ",
                        b"|\n",
                    ]
                )
            )
        elif op == "replace":
            base[pos : pos + 1] = draw(st.binary(min_size=1, max_size=3))
        elif op == "tag":
            base[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"!!python/object/apply:os.system ['touch /tmp/pwned'] ",
                        b"!!python/name:os.system ",
                        b"!custom ",
                        b"!!binary ",
                        b"!!set ",
                    ]
                )
            )
        elif op == "alias":
            base[pos:pos] = b"\nbomb: &b [" + b",".join([b"*b"] * 3) + b"]\n"
        else:
            base[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(base)


def _check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        recipe = load_recipe(path, check_files=False)
    except RecipeError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1
            assert LOCATED.match(str(problem)), str(problem)
    else:
        assert isinstance(recipe, Recipe)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_recipes_give_located_errors(tmp_path, data):
    _check(tmp_path / "r.yaml", data)
    assert not Path("/tmp/pwned").exists()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.dictionaries(_keys, _values, max_size=6))
def test_random_structures_give_located_errors(tmp_path, value):
    _check(tmp_path / "r.yaml", _yaml_of(value).encode())


@pytest.mark.parametrize(
    "text",
    [
        b"a: " + b"[" * 5000 + b"]" * 5000,  # deep nesting
        b"name: x\n" + b"k: " + b"9" * 5000 + b"\n",  # a huge number
        b"\xff\xfe\x00n\x00a\x00m\x00e",  # UTF-16 bytes
        b"x: " + b"a" * 2_000_000,  # too large
        b"a: &a [1,2,3,4,5,6,7,8,9,10]\n"
        + b"".join(
            b"%c: &%c [" % (98 + i, 98 + i) + b",".join([b"*%c" % (97 + i)] * 10) + b"]\n" for i in range(9)
        ),
    ],
    ids=["deep", "huge-number", "utf16", "too-large", "alias-bomb"],
)
def test_pathological_inputs_fail_fast_through_the_cli(tmp_path, bakeoff_cmd, text):
    path = tmp_path / "r.yaml"
    path.write_bytes(text)
    proc = subprocess.run([*bakeoff_cmd, "validate", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: ", proc.stderr, re.M), proc.stderr
