import pytest
from textkit import chunk, dedupe, mean


def test_chunk():
    assert chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


def test_chunk_rejects_zero():
    with pytest.raises(ValueError):
        chunk([1], 0)


def test_dedupe_keeps_order():
    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean([]) == 0.0
