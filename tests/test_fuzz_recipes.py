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

from bakeoff.recipe.load import RecipeError, load_recipe
from bakeoff.recipe.schema import Recipe

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [p.read_text() for p in sorted((ROOT / "recipes").glob("*.yaml"))]
PARSED = [__import__("bakeoff.recipe._yaml", fromlist=["load_yaml"]).load_yaml(text)[0] for text in SEEDS]
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


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a parsed recipe."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


@st.composite
def structurally_mutated(draw) -> bytes:
    """A shipped recipe with a few values replaced, keys dropped or added: well-formed YAML that reaches the
    validators of every block (agents, training, corpus, eval, sweeps) with wrong types and values."""
    import copy

    tree = copy.deepcopy(draw(st.sampled_from(PARSED)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(tree) if p]
        path = draw(st.sampled_from(paths))
        parent = tree
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "wrap", "number"]))
        if op == "replace":
            parent[path[-1]] = draw(_values)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(_keys | st.text(min_size=1, max_size=8))] = draw(_values)
        elif op == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = draw(
                st.sampled_from(
                    [0, -1, 10**30, -(10**30), 0.5, float("inf"), "1e999", "", "../../etc/passwd"]
                )
            )
    import io

    from ruamel.yaml import YAML

    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(tree, out)
    return out.getvalue().encode()


def _check(path: Path, data: bytes, *, check_files: bool = False) -> None:
    path.write_bytes(data)
    try:
        recipe = load_recipe(path, check_files=check_files)
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=structurally_mutated())
def test_structurally_mutated_recipes_give_located_errors(tmp_path, data):
    # laid out like the repository, so the seeds' data files exist and are checked as `bakeoff validate` does
    (tmp_path / "recipes").mkdir(exist_ok=True)
    if not (tmp_path / "data").exists():
        (tmp_path / "data").symlink_to(ROOT / "data")
    _check(tmp_path / "recipes" / "r.yaml", data, check_files=True)


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
        # found by the structural fuzzer (TypeError: unhashable type: 'list' in the cross-field checks)
        b"name: x\neval: {questions: q.jsonl, metrics: [[rougeL]]}\ncandidates: [{name: a, agent: fewshot}]\n",
        b"name: x\ntask: [qa]\neval: {questions: q.jsonl, headline: rougeL}\ncandidates: [{name: a, agent: fewshot}]\n",
    ],
    ids=["deep", "huge-number", "utf16", "too-large", "alias-bomb", "metric-list", "task-list"],
)
def test_pathological_inputs_fail_fast_through_the_cli(tmp_path, bakeoff_cmd, text):
    path = tmp_path / "r.yaml"
    path.write_bytes(text)
    proc = subprocess.run([*bakeoff_cmd, "validate", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: ", proc.stderr, re.M), proc.stderr
