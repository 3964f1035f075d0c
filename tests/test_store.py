"""The resume store heals and is locked: every record is validated when read (a
relaxation, the parent, the curvatures and their Hessian); a bad one is named in one
line, moved into ``out/corrupt/`` and recomputed, and the rerun ends with the result of a
clean run. One record format per result type (``todict``/``fromdict``), round-tripped
through JSON. Two runs into one output directory: the second is refused, naming the
directory and the holder; a dead holder's lock is taken over."""

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write
from hypothesis import given, settings
from hypothesis import strategies as st

from ase_sbs.cli import main
from ase_sbs.core.files import json_safe
from ase_sbs.errors import SBSInputError
from ase_sbs.explore.levels import curvatures_fromdict
from ase_sbs.explore.protocol import break_symmetry
from ase_sbs.explore.results import RELAXATION_STATUSES, SCHEMA, ParentResult, Phase, Relaxation
from ase_sbs.explore.store import CorruptRecordWarning, RecordError, Store

# ---------------------------------------------------------------------------------
# records of each type, as an exploration writes them


def a_relaxation(natoms=2, **changes) -> Relaxation:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)[:natoms]
    fields = dict(target="I4/mmm (139)", member=0, sign=1, irreps="2e", sbs_object=[0.0, 0.0, 1.0, 0.0, 0.0],
                  status="broken", energy_eV=-0.125, natoms=natoms, spacegroup_number=139, spacegroup_symbol="I4/mmm",
                  point_group="D4h", point_group_order=16, ladder={"0.001": "I4/mmm", "0.01": None},
                  strength_eV=1.5, steps={"lambda_x1": 4, "release": 3}, converged=True, max_displacement_A=0.0,
                  max_strain=0.03, channels=["Eg"], key="k", stages_converged=[True, True], atoms=atoms)
    return Relaxation(**{**fields, **changes})


def a_parent(natoms=1) -> ParentResult:
    atoms = bulk("Cu", "bcc", a=2.87) * (natoms, 1, 1)
    return ParentResult(spacegroup_number=229, spacegroup_symbol="Im-3m", point_group="Oh", energy_eV=0.0256 * natoms,
                        natoms=natoms, formula_units=natoms, atoms=atoms, steps=3, force_noise_eV_A=1e-14,
                        key="parent-x")


def saved(result) -> dict:
    """A record as the store writes it and reads it back."""
    return json.loads(json.dumps(json_safe(result.todict()), allow_nan=False))


# ---------------------------------------------------------------------------------
# todict / fromdict: one format per type, round-tripped through JSON

texts = st.text(max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10**6)  # a cell multiplication can round to 0
positives = st.integers(min_value=1, max_value=10**6)
groups = st.none() | st.integers(min_value=1, max_value=230)
ladders = st.dictionaries(st.sampled_from(["1e-05", "0.0001", "0.001", "0.01"]), st.none() | texts)
json_values = st.recursive(st.none() | st.booleans() | finite | st.integers() | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                           max_leaves=8)


@st.composite
def structures(draw, natoms=None):
    n = draw(st.integers(min_value=1, max_value=4)) if natoms is None else natoms
    coordinate = st.floats(-1e3, 1e3, allow_nan=False)
    positions = draw(st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=n, max_size=n))
    return Atoms("Cu" * n, positions=positions, cell=[3.0, 3.0, 3.0], pbc=True)


@st.composite
def relaxations(draw):
    atoms = draw(structures())
    return Relaxation(
        target=draw(texts), member=draw(st.integers(0, 100)), sign=draw(st.sampled_from([1, -1])), irreps=draw(texts),
        sbs_object=draw(st.lists(finite, min_size=1, max_size=6)), status=draw(st.sampled_from(RELAXATION_STATUSES)),
        energy_eV=draw(finite), natoms=len(atoms), spacegroup_number=draw(groups),
        spacegroup_symbol=draw(st.none() | texts), point_group=draw(texts), point_group_order=draw(counts),
        ladder=draw(ladders), strength_eV=draw(finite),
        steps=draw(st.dictionaries(texts, st.integers(0, 10**6), max_size=4)), converged=draw(st.booleans()),
        max_displacement_A=draw(finite), max_strain=draw(finite), field_spacegroup=draw(st.none() | texts),
        channels=draw(st.lists(texts, max_size=3)), cell_multiplication=draw(counts), key=draw(st.none() | texts),
        stages_converged=draw(st.lists(st.booleans(), max_size=5)), atoms=atoms)


@st.composite
def parents(draw):
    atoms = draw(structures())
    return ParentResult(spacegroup_number=draw(groups), spacegroup_symbol=draw(st.none() | texts),
                        point_group=draw(texts), energy_eV=draw(finite), natoms=len(atoms),
                        formula_units=draw(positives), atoms=atoms, steps=draw(st.integers(0, 10**6)),
                        force_noise_eV_A=draw(finite), key=draw(st.none() | texts))


@st.composite
def phases(draw):
    return Phase(
        target=draw(texts), targets=draw(st.lists(texts, max_size=3)), spacegroup_number=draw(groups),
        spacegroup_symbol=draw(st.none() | texts), point_group=draw(texts), energy_per_atom_eV=draw(finite),
        delta_energy_per_atom_eV=draw(finite), delta_energy_per_formula_unit_eV=draw(finite),
        n_variants=draw(counts), spontaneous=draw(st.booleans()), irreps=draw(texts),
        lattice=draw(st.none() | st.lists(finite, min_size=6, max_size=6)), max_displacement_A=draw(finite),
        steps=draw(st.integers(0, 10**6)), atoms=draw(structures()), structure_file=draw(st.none() | texts),
        modes=draw(st.none() | st.dictionaries(texts, json_values, max_size=3)), cell_multiplication=draw(counts),
        channels=draw(st.lists(texts, max_size=3)), status=draw(texts), relaxation_key=draw(st.none() | texts),
        ladder=draw(ladders))


def round_trips(result):
    text = json.dumps(result.todict(), allow_nan=False)  # plain JSON: nothing needs a converter
    data = json.loads(text)
    assert data["schema"] == SCHEMA and "atoms" not in data and "variants" not in data
    again = type(result).fromdict(data, result.atoms)
    assert again == result
    assert json.dumps(again.todict(), allow_nan=False) == text


@settings(max_examples=60, deadline=None)
@given(relaxations())
def test_a_relaxation_round_trips_through_json(result):
    round_trips(result)


@settings(max_examples=60, deadline=None)
@given(parents())
def test_a_parent_round_trips_through_json(result):
    round_trips(result)


@settings(max_examples=60, deadline=None)
@given(phases())
def test_a_phase_round_trips_through_json(result):
    round_trips(result)


@pytest.mark.parametrize("result", [a_relaxation(), a_parent(2)], ids=["relaxation", "parent"])
def test_a_record_round_trips_through_the_store(result, tmp_path):
    store = Store(str(tmp_path))
    store.save("k", result.todict(), result.atoms)
    again = store.load("k", type(result).fromdict)
    assert store.reused == 1
    assert again.todict() == result.todict()
    assert np.allclose(again.atoms.positions, result.atoms.positions)
    assert np.allclose(again.atoms.cell, result.atoms.cell)


def test_an_older_record_without_a_version_or_newer_fields_loads_with_their_defaults():
    data = saved(a_relaxation())
    for name in ("schema", "stages_converged", "max_strain", "field_spacegroup", "channels", "cell_multiplication",
                 "key"):
        del data[name]
    r = Relaxation.fromdict(data, a_relaxation().atoms)
    assert r.stages_converged == [] and r.max_strain == 0.0 and r.field_spacegroup is None and r.channels == []
    assert r.cell_multiplication == 1 and r.key is None and r.energy_eV == -0.125


def test_counts_that_can_be_zero_are_accepted():
    """A relaxation's cell multiplication rounds to 0 when its primitive cell is smaller
    than the parent's (``classify.cell_multiplication``): a valid record."""
    data = {**saved(a_relaxation()), "cell_multiplication": 0}
    assert Relaxation.fromdict(data, a_relaxation().atoms).cell_multiplication == 0


def test_fields_this_version_does_not_know_are_ignored():
    data = {**saved(a_parent()), "written_by": "a later version", "extra": [1, 2]}
    assert ParentResult.fromdict(data, a_parent().atoms) == a_parent()


BAD_FIELDS = [  # (type, field, value): a wrong type or content
    (Relaxation, "energy_eV", "-0.125"), (Relaxation, "energy_eV", None), (Relaxation, "energy_eV", float("nan")),
    (Relaxation, "natoms", 2.0), (Relaxation, "natoms", True), (Relaxation, "converged", 1),
    (Relaxation, "channels", "Eg"), (Relaxation, "channels", [1]), (Relaxation, "sbs_object", [0.0, "1"]),
    (Relaxation, "sbs_object", [float("inf")]), (Relaxation, "status", "fine"), (Relaxation, "sign", 0),
    (Relaxation, "steps", {"release": -1}), (Relaxation, "ladder", ["I4/mmm"]),
    (Relaxation, "stages_converged", [1, 0]), (Relaxation, "spacegroup_number", "139"),
    (ParentResult, "formula_units", 0), (ParentResult, "point_group", 32), (ParentResult, "steps", 3.5),
    (Phase, "lattice", [1.0, 2.0]), (Phase, "targets", "Fmmm"), (Phase, "modes", [1]),
]


@pytest.mark.parametrize("cls, name, value", BAD_FIELDS)
def test_a_field_of_the_wrong_type_is_a_bad_record(cls, name, value):
    result = {Relaxation: a_relaxation, ParentResult: a_parent}.get(cls, a_phase)()
    data = {**saved(result), name: value}
    with pytest.raises(RecordError, match=repr(name)):
        cls.fromdict(data, result.atoms)


def a_phase() -> Phase:
    return Phase(target="I4/mmm (139)", targets=["I4/mmm (139)"], spacegroup_number=139, spacegroup_symbol="I4/mmm",
                 point_group="D4h", energy_per_atom_eV=0.0, delta_energy_per_atom_eV=-0.001,
                 delta_energy_per_formula_unit_eV=-0.001, n_variants=3, spontaneous=True, irreps="2e",
                 lattice=[2.5, 2.5, 2.6, 90.0, 90.0, 90.0], max_displacement_A=0.0, steps=9,
                 atoms=bulk("Cu", "bcc", a=2.87))


@pytest.mark.parametrize("schema", [0, 2, 99, "1", True, None, 1.0])
def test_a_schema_version_this_version_does_not_read_is_a_bad_record(schema):
    data = {**saved(a_relaxation()), "schema": schema}
    with pytest.raises(RecordError, match="schema version"):
        Relaxation.fromdict(data, a_relaxation().atoms)


def test_a_missing_field_a_structure_of_another_size_and_a_non_object_are_bad_records():
    data = saved(a_relaxation())
    with pytest.raises(RecordError, match="'energy_eV'.*missing"):
        Relaxation.fromdict({k: v for k, v in data.items() if k != "energy_eV"}, a_relaxation().atoms)
    with pytest.raises(RecordError, match="3 atoms, the record says natoms = 2"):
        Relaxation.fromdict(data, a_relaxation(3).atoms)
    with pytest.raises(RecordError, match="needs its structure"):
        ParentResult.fromdict(saved(a_parent()), None)
    with pytest.raises(RecordError, match="JSON list"):
        ParentResult.fromdict([1, 2], a_parent().atoms)


def test_curvature_records_old_and_new_and_bad_ones():
    assert curvatures_fromdict({"Eg": [-0.1, -0.1], "A1g": [5.5]}) == {"Eg": [-0.1, -0.1], "A1g": [5.5]}
    assert curvatures_fromdict({"schema": 1, "curvatures": {"Eg": [-0.1]}}) == {"Eg": [-0.1]}
    for bad in ({"schema": 2, "curvatures": {"Eg": [-0.1]}}, {"Eg": "x"}, {"Eg": []}, {"Eg": [[1.0]]},
                {"Eg": [None]}, [1.0], {"schema": 1}, {"schema": 1, "curvatures": {"Eg": [True]}}):
        with pytest.raises(RecordError):
            curvatures_fromdict(bad)


# ---------------------------------------------------------------------------------
# the store: each corruption of each kind of file, named, moved aside, missing


def cut_in_the_last_number(raw: bytes) -> bytes:
    return raw[:-3]


def structure_of_another_size(path) -> bytes:
    write(path, bulk("Cu", "bcc", a=2.87, cubic=True) * (1, 1, 3), format="extxyz")  # 6 atoms
    return path.read_bytes()


def non_finite_structure(path) -> bytes:
    atoms = bulk("Cu", "bcc", a=2.87)
    atoms.positions[0, 0] = np.nan
    write(path, atoms, format="extxyz")
    return path.read_bytes()


JSON_FAULTS = {
    "truncated": lambda raw, path: raw[: len(raw) // 2],
    "truncated at the end": lambda raw, path: raw[:-2],
    "garbage": lambda raw, path: b"\x00\xff\xfe garbage \x93NUMPY {[" * 8,
    "empty": lambda raw, path: b"",
    "wrong schema": lambda raw, path: json.dumps({**json.loads(raw), "schema": 99}).encode(),
    "wrong types": lambda raw, path: json.dumps({**json.loads(raw), "energy_eV": "low"}).encode(),
    "not an object": lambda raw, path: b"[1, 2, 3]\n",
}
STRUCTURE_FAULTS = {
    "truncated": lambda raw, path: raw[: len(raw) // 2],
    "truncated at the end": lambda raw, path: cut_in_the_last_number(raw),
    "garbage": lambda raw, path: b"\x00\xff\xfe garbage\n" * 8,
    "empty": lambda raw, path: b"",
    "wrong schema": lambda raw, path: structure_of_another_size(path),  # readable, but not the record's natoms
    "two frames": lambda raw, path: raw + raw,
    "wrong types": lambda raw, path: non_finite_structure(path),
}


def corrupt(path, fault) -> bytes:
    raw = path.read_bytes()
    bad = fault(raw, path)
    path.write_bytes(bad)
    return bad


def check_set_aside(caught, out, path, bad: bytes, recomputed: bool = False):
    """One warning naming ``path``; its bytes kept under out/corrupt/, not in place
    (unless ``recomputed``: then in its place is the recomputed record)."""
    named = [w for w in caught if issubclass(w.category, CorruptRecordWarning)]
    assert len(named) == 1, [str(w.message) for w in caught]
    message = str(named[0].message)
    assert str(path) in message and "moved to" in message and "\n" not in message, message
    assert path.exists() == recomputed
    stem, ext = os.path.splitext(path.name)
    kept = [f for f in os.listdir(out / "corrupt") if f.startswith(stem + ".") and f.endswith(ext)]
    assert len(kept) == 1 and (out / "corrupt" / kept[0]).read_bytes() == bad
    return message


@pytest.mark.parametrize("which, fault", [("json", f) for f in JSON_FAULTS] + [("extxyz", f) for f in STRUCTURE_FAULTS])
def test_a_corrupt_relaxation_record_is_named_moved_aside_and_missing(which, fault, tmp_path):
    faults = JSON_FAULTS if which == "json" else STRUCTURE_FAULTS
    store = Store(str(tmp_path))
    r = a_relaxation()
    store.save("r1", r.todict(), r.atoms)
    path = tmp_path / "relaxations" / f"r1.{which}"
    bad = corrupt(path, faults[fault])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.load("r1", Relaxation.fromdict) is None
    check_set_aside(caught, tmp_path, path, bad)
    other = tmp_path / "relaxations" / f"r1.{'extxyz' if which == 'json' else 'json'}"
    assert not other.exists() and len(os.listdir(tmp_path / "corrupt")) == 2  # the record's two files together
    assert store.reused == 0
    store.save("r1", r.todict(), r.atoms)  # recomputed: saved anew, and read
    assert store.load("r1", Relaxation.fromdict).todict() == r.todict() and store.reused == 1


def test_a_record_whose_structure_file_is_gone_is_moved_aside(tmp_path):
    store = Store(str(tmp_path))
    store.save("p", a_parent().todict(), a_parent().atoms)
    os.unlink(tmp_path / "relaxations" / "p.extxyz")
    with pytest.warns(CorruptRecordWarning, match="p.extxyz is missing"):
        assert store.load("p", ParentResult.fromdict) is None
    assert os.listdir(tmp_path / "relaxations") == [] and len(os.listdir(tmp_path / "corrupt")) == 1


def test_a_structure_alone_is_an_unfinished_save_not_a_corrupt_record(tmp_path):
    store = Store(str(tmp_path))
    store.save("p", a_parent().todict(), a_parent().atoms)
    os.unlink(tmp_path / "relaxations" / "p.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load("p", ParentResult.fromdict) is None
    assert not (tmp_path / "corrupt").exists()


CURVATURE_FAULTS = {
    "truncated": lambda raw, path: raw[: len(raw) // 2],
    "garbage": JSON_FAULTS["garbage"],
    "empty": JSON_FAULTS["empty"],
    "wrong schema": lambda raw, path: json.dumps({**json.loads(raw), "schema": 99}).encode(),
    "wrong types": lambda raw, path: json.dumps({"schema": 1, "curvatures": {"Eg": "unstable"}}).encode(),
}


@pytest.mark.parametrize("fault", sorted(CURVATURE_FAULTS))
def test_a_corrupt_curvature_record_is_named_moved_aside_and_missing(fault, tmp_path):
    store = Store(str(tmp_path))
    store.save_data("curvatures-x", {"schema": 1, "curvatures": {"Eg": [-0.1, -0.1]}})
    path = tmp_path / "channels" / "curvatures-x.json"
    bad = corrupt(path, CURVATURE_FAULTS[fault])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.load_data("curvatures-x", curvatures_fromdict) is None
    check_set_aside(caught, tmp_path, path, bad)


def npy(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


ARRAY_FAULTS = {
    "truncated": lambda raw, path: raw[: len(raw) // 2],
    "truncated at the end": lambda raw, path: raw[:-2],
    "garbage": lambda raw, path: b"\x93NUMPY\x01\x00 garbage \x00\xff" * 8,
    "empty": lambda raw, path: b"",
    "wrong schema": lambda raw, path: npy(np.eye(3)),  # another shape
    "wrong types": lambda raw, path: npy(np.full((4, 4), np.nan)),
    "integers": lambda raw, path: npy(np.eye(4, dtype=int)),
    "pickled": lambda raw, path: npy(np.array([{"a": 1}], dtype=object)),
}


@pytest.mark.parametrize("fault", sorted(ARRAY_FAULTS))
def test_a_corrupt_array_is_named_moved_aside_and_missing(fault, tmp_path):
    store = Store(str(tmp_path))
    store.save_array("curvatures-x", np.eye(4))
    path = tmp_path / "channels" / "curvatures-x.npy"
    bad = corrupt(path, ARRAY_FAULTS[fault])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.load_array("curvatures-x", (4, 4)) is None
    check_set_aside(caught, tmp_path, path, bad)
    store.save_array("curvatures-x", np.eye(4))
    assert np.array_equal(store.load_array("curvatures-x", (4, 4)), np.eye(4))


def test_a_second_corrupt_copy_in_the_same_second_does_not_overwrite_the_first(tmp_path):
    store = Store(str(tmp_path))
    for _ in range(3):
        (tmp_path / "channels" / "c.npy").write_bytes(b"")
        with pytest.warns(CorruptRecordWarning):
            store.load_array("c", (2, 2))
    assert len(os.listdir(tmp_path / "corrupt")) == 3


# ---------------------------------------------------------------------------------
# end to end: each kind of record corrupted in turn, the rerun ends as a clean run

CU = bulk("Cu", "bcc", a=2.87)  # EMT: breaks to fcc and a tetragonal phase


def explore(out):
    return break_symmetry(CU.copy(), calc="emt", out=str(out), progress=False)


def comparable(ex) -> dict:
    data = json_safe(ex.as_dict())
    data.pop("reused")
    return data


def records(out) -> dict:
    """Every record file of an output directory, by its path under it."""
    return {f"{sub}/{f}": (out / sub / f).read_bytes() for sub in ("relaxations", "channels")
            for f in sorted(os.listdir(out / sub))}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    ex = explore(out)
    assert ex.reused == 0 and ex.phases
    return out, comparable(ex), records(out)


KINDS = {  # the file of each kind of record in a clean run's directory
    "relaxation.json": lambda names: next(n for n in names if n.startswith("relaxations/Fmmm") and n.endswith(".json")),
    "relaxation.extxyz": lambda names: next(n for n in names if n.startswith("relaxations/I4") and n.endswith("xyz")),
    "parent.json": lambda names: next(n for n in names if n.startswith("relaxations/parent") and n.endswith(".json")),
    "parent.extxyz": lambda names: next(n for n in names if n.startswith("relaxations/parent") and n.endswith("xyz")),
    "curvatures.json": lambda names: next(n for n in names if n.startswith("channels/") and n.endswith(".json")),
    "curvatures.npy": lambda names: next(n for n in names if n.endswith(".npy")),
}


def faults_of(kind: str) -> dict:
    if kind.endswith(".extxyz"):
        return STRUCTURE_FAULTS
    if kind.endswith(".npy"):
        return ARRAY_FAULTS
    return CURVATURE_FAULTS if kind.startswith("curvatures") else JSON_FAULTS


CASES = [(kind, fault) for kind in KINDS for fault in ("truncated", "garbage", "empty", "wrong schema", "wrong types")]


@pytest.mark.parametrize("kind, fault", CASES)
def test_a_rerun_over_a_corrupt_record_names_it_recomputes_it_and_ends_as_a_clean_run(kind, fault, clean, tmp_path):
    clean_out, clean_result, clean_records = clean
    out = tmp_path / "out"
    shutil.copytree(clean_out, out, ignore=shutil.ignore_patterns(".lock"))
    name = KINDS[kind](sorted(clean_records))
    path = out / name
    bad = corrupt(path, faults_of(kind)[fault])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ex = explore(out)
    check_set_aside(caught, out, path, bad, recomputed=True)
    assert comparable(ex) == clean_result
    assert records(out) == clean_records  # recomputed and saved as a clean run saves it
    finished = sum(n.startswith("relaxations/") and n.endswith(".json") for n in clean_records)
    assert ex.reused == finished - (not kind.startswith("curvatures"))


def test_the_command_line_names_a_corrupt_record_and_ends_as_a_clean_run(clean, tmp_path, capsys):
    clean_out, clean_result, clean_records = clean
    out = tmp_path / "out"
    shutil.copytree(clean_out, out, ignore=shutil.ignore_patterns(".lock", "explore.json", "phases", "*.png"))
    write(tmp_path / "cu.extxyz", CU)
    path = out / KINDS["parent.json"](sorted(clean_records))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(CorruptRecordWarning, match=f"corrupt record {path}: not valid JSON"):
        assert main(["explore", str(tmp_path / "cu.extxyz"), "--calc", "emt", "--out", str(out), "--no-progress"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    data = json.loads((out / "explore.json").read_text())
    data.pop("reused")
    for ph in data["phases"]:
        assert ph.pop("structure_file").startswith("phases")  # the files the command line writes
    assert data == {**clean_result, "phases": [{k: v for k, v in ph.items() if k != "structure_file"}
                                               for ph in clean_result["phases"]]}


# ---------------------------------------------------------------------------------
# two runs into one directory

HOLD = """
import sys
from ase_sbs.explore.store import Store
store = Store(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the store of tmp_path/out until it is killed."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_run_into_a_directory_in_use_is_refused_naming_it_and_the_holder(holder):
    out, proc = holder
    with pytest.raises(SBSInputError) as caught:
        Store(str(out))
    message = str(caught.value)
    assert str(out) in message and f"PID {proc.pid} " in message and "in use by another run" in message


def test_the_command_line_refuses_a_second_explore_into_one_out_in_one_line(holder, tmp_path, capsys):
    out, proc = holder
    write(tmp_path / "cu.extxyz", CU)
    assert main(["explore", str(tmp_path / "cu.extxyz"), "--calc", "emt", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and f"PID {proc.pid}" in err[0], err
    assert os.listdir(out / "relaxations") == [] and os.listdir(out / "channels") == []  # nothing done twice


def test_the_lock_of_a_dead_run_is_taken_over(holder):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait()
    assert (out / ".lock").read_text().split()[0] == str(proc.pid)  # its file is still there
    store = Store(str(out))
    assert (out / ".lock").read_text().split()[0] == str(os.getpid())
    store.close()


def test_the_lock_is_shared_within_a_process_and_let_go_with_its_stores(tmp_path):
    out = str(tmp_path / "out")
    first = Store(out)
    second = Store(out)  # one process: its explorations run one after the other
    probe = [sys.executable, "-c", "import sys; from ase_sbs.explore.store import Store; Store(sys.argv[1])", out]
    refused = subprocess.run(probe, capture_output=True, text=True)
    assert refused.returncode != 0 and "in use by another run" in refused.stderr
    first.close()
    del second
    assert subprocess.run(probe, capture_output=True, text=True).returncode == 0
