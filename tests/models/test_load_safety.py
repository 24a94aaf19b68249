"""A model folder is data, not code: loading one builds only this package's model
classes, with parameters they accept, from arrays that fit the vocabularies.
Anything else is one `IntegrityError` naming the file and the field."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from recsys_cli.errors import IntegrityError
from recsys_cli.models.base import META, WEIGHTS, Recommender
from recsys_cli.models.data import TrainData
from tests.models.conftest import checkerboard
from tests.models.test_contract import small

FAST = ("item_knn", "ease", "als", "segment_popularity", "ranker_lgbm")
NEURAL = {"sasrec": ["trainer.max_epochs=1"], "two_tower": ["trainer.max_epochs=1"], "bpr_mf": ["trainer.max_epochs=1"]}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved folder per model, fitted once on the checkerboard."""
    data: TrainData = checkerboard()[0]
    root = tmp_path_factory.mktemp("saved")
    folders = {}
    for name in (*FAST, *NEURAL):
        small(name, *NEURAL.get(name, [])).fit(data).save(root / name)
        folders[name] = root / name
    return folders


@pytest.fixture
def copy(saved: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        return Path(shutil.copytree(saved[name], tmp_path / name))

    return make


def edit_meta(folder: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads((folder / META).read_text())
    change(meta)
    (folder / META).write_text(json.dumps(meta))


def edit_tensors(folder: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    tensors = dict(load_file(str(folder / WEIGHTS)))
    change(tensors)
    save_file(tensors, str(folder / WEIGHTS))


# ---- only our own classes -------------------------------------------------------------


def test_a_class_outside_the_package_is_never_imported_or_called(copy: Callable[[str], Path], tmp_path: Path) -> None:
    folder, marker = copy("ease"), tmp_path / "pwned"
    edit_meta(folder, lambda m: m.update({"class": "os.system", "params": {"command": f"touch {marker}"}}))
    with pytest.raises(IntegrityError, match=r"model\.json: class: 'os.system' is not a recsys model class"):
        Recommender.load(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    "name",
    [
        "recsys_cli.models.base.Recommender",  # abstract
        "recsys_cli.models.state.StateError",  # ours, but not a model
        "recsys_cli.models.ease.np",  # a module imported into ours
        "recsys_cli.models.classes.importlib.import_module",
        "recsys_cli.models.ranker.Recommender",  # a model imported into another module
        "builtins.eval",
        "recsys_cli.models.nonexistent.Model",
    ],
)
def test_only_concrete_models_defined_in_the_package_are_accepted(copy: Callable[[str], Path], name: str) -> None:
    folder = copy("ease")
    edit_meta(folder, lambda m: m.update({"class": name}))
    with pytest.raises(IntegrityError, match="is not a recsys model class"):
        Recommender.load(folder)


def test_parameters_must_be_ones_the_class_takes(copy: Callable[[str], Path]) -> None:
    folder = copy("ease")
    edit_meta(folder, lambda m: m["params"].update({"command": "touch /tmp/x"}))
    with pytest.raises(IntegrityError, match=r"model\.json: params: EASE takes no parameter 'command'"):
        Recommender.load(folder)
    edit_meta(folder, lambda m: m.update({"params": "l2=1"}))
    with pytest.raises(IntegrityError, match="params: must be a mapping"):
        Recommender.load(folder)


def test_a_ranker_generator_spec_names_only_package_models(copy: Callable[[str], Path], tmp_path: Path) -> None:
    folder, marker = copy("ranker_lgbm"), tmp_path / "pwned"
    edit_meta(
        folder,
        lambda m: m["params"]["generators"].update({"als": {"_target_": "os.system", "command": f"touch {marker}"}}),
    )
    with pytest.raises(IntegrityError, match=r"params\.generators\.als\._target_: 'os.system' is not a recsys model"):
        Recommender.load(folder)
    assert not marker.exists()


# ---- damaged folders --------------------------------------------------------------------


def test_missing_truncated_or_unreadable_files_are_one_error(copy: Callable[[str], Path]) -> None:
    folder = copy("item_knn")
    weights = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(IntegrityError, match="not a readable weights file"):
        Recommender.load(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(IntegrityError, match="weights.safetensors: missing"):
        Recommender.load(folder)
    (folder / META).write_text("{not json")
    with pytest.raises(IntegrityError, match="model.json: not readable JSON"):
        Recommender.load(folder)
    (folder / META).write_text("[1, 2]")
    with pytest.raises(IntegrityError, match="must hold a JSON object"):
        Recommender.load(folder)


def test_wrong_keys_and_vocabularies_are_refused(copy: Callable[[str], Path]) -> None:
    folder = copy("item_knn")
    edit_meta(folder, lambda m: m["users"].update({"tokens": 5}))
    with pytest.raises(IntegrityError, match=r"users\.tokens must be a non-empty list of text"):
        Recommender.load(folder)
    folder = copy("ease")
    edit_tensors(folder, lambda t: t.pop("model.b"))
    with pytest.raises(IntegrityError, match="no tensor b"):
        Recommender.load(folder)


# ---- sparse structures and tensors ------------------------------------------------------


def _bump(key: str, by: int) -> Callable[[dict[str, np.ndarray]], None]:
    def change(tensors: dict[str, np.ndarray]) -> None:
        tensors[key] = tensors[key].copy()
        tensors[key][-1] += by

    return change


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("item_knn", _bump("model.sim_indices", 10**9), "sim_indices holds columns outside"),
        ("item_knn", _bump("model.x_indptr", 5), "x_indptr is not a valid row pointer"),
        ("ease", _bump("model.x_indices", 10**6), "x_indices holds columns outside"),
        ("ease", _bump("base.seen_indices", 10**6), "base.seen_indices holds columns outside"),
        ("als", lambda t: t.update({"model.user_factors": t["model.user_factors"][:-3]}), "user_factors has shape"),
        ("ease", lambda t: t.update({"model.b": t["model.b"][:, :-1].copy()}), "b has shape"),
        ("segment_popularity", _bump("model.user_segment", 50), "user_segment holds indices outside"),
        ("sasrec", _bump("model.sequences", 10**6), "sequences holds indices outside"),
        ("two_tower", lambda t: t.update({"model.user.weight": t["model.item_cat"]}), "does not fit|has shape"),
        ("bpr_mf", lambda t: t.update({"model.item.weight": t["model.item.weight"][:-1]}), "item.weight has shape"),
        ("ranker_lgbm", _bump("model.tables.item_category", 10**6), "item_category holds indices outside"),
        ("ranker_lgbm", _bump("model.gen.item_knn.x_indices", 10**6), "x_indices holds columns outside"),
        (
            "ranker_lgbm",
            lambda t: t.update({"model.tables.item_num": np.pad(t["model.tables.item_num"], ((0, 0), (0, 1)))}),
            "item_names: give the table's 9 column names",
        ),
        (  # a folder saved before the column names were kept: the boosters' width decides
            "ranker_lgbm",
            lambda t: (
                t.update({"model.tables.item_num": np.pad(t["model.tables.item_num"], ((0, 0), (0, 1)))})
                or t.pop("model.tables.item_names")
            ),
            "LightGBM model 0 reads",
        ),
    ],
)
def test_corrupt_arrays_are_refused_before_use(
    copy: Callable[[str], Path], name: str, change: Callable[[dict[str, np.ndarray]], None], message: str
) -> None:
    folder = copy(name)
    edit_tensors(folder, change)
    with pytest.raises(IntegrityError, match=message):
        Recommender.load(folder)


def test_two_tower_codes_must_index_their_embedding_tables(copy: Callable[[str], Path]) -> None:
    folder = copy("two_tower")
    tensors = load_file(str(folder / WEIGHTS))
    if tensors["model.user_cat"].shape[1] == 0:
        pytest.skip("the board's users have no categorical side features")
    edit_tensors(folder, _bump("model.user_cat", 10**6))
    with pytest.raises(IntegrityError, match="user_cat holds codes outside"):
        Recommender.load(folder)


def test_ranker_lightgbm_models_are_lightgbm_text_files(copy: Callable[[str], Path]) -> None:
    """Each booster is `lightgbm_<i>.txt`, LightGBM's own format; a damaged or missing
    one is refused naming the file, and a folder saved the old way (the text as a
    uint8 tensor in the weights) still loads to the same scores."""
    import lightgbm as lgb

    folder = copy("ranker_lgbm")
    users = np.arange(len(json.loads((folder / META).read_text())["users"]["tokens"]))
    assert lgb.Booster(model_file=str(folder / "lightgbm_0.txt")).num_trees() > 0
    assert not any(k.startswith("model.lightgbm.") for k in load_file(str(folder / WEIGHTS)))
    expected = Recommender.load(folder).score(users)

    text = (folder / "lightgbm_0.txt").read_bytes()
    (folder / "lightgbm_0.txt").unlink()
    with pytest.raises(IntegrityError, match=r"lightgbm_0\.txt: missing"):
        Recommender.load(folder)
    (folder / "lightgbm_0.txt").write_bytes(text[:40])
    with pytest.raises(IntegrityError, match=r"lightgbm_0\.txt: not a readable LightGBM model"):
        Recommender.load(folder)

    (folder / "lightgbm_0.txt").unlink()
    edit_tensors(folder, lambda t: t.update({"model.lightgbm.0": np.frombuffer(text, dtype=np.uint8).copy()}))
    np.testing.assert_array_equal(Recommender.load(folder).score(users), expected)
    edit_tensors(folder, lambda t: t.update({"model.lightgbm.0": t["model.lightgbm.0"][:40]}))
    with pytest.raises(IntegrityError, match="not readable"):
        Recommender.load(folder)
