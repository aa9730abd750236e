"""The route table both sides share."""

from __future__ import annotations

import pytest

from brainlife.wire import routes


def test_url_quotes_segments_and_keeps_path_slashes() -> None:
    assert routes.DATASET_DOWNLOAD.url(dataset_id="abc") == "/api/warehouse/dataset/download/abc"
    assert (
        routes.TASK_DOWNLOAD_PATH.url(task_id="t/1", path="/out dir/a#b.txt")
        == "/api/amaretti/task/download/t%2F1/out%20dir/a%23b.txt"
    )


def test_url_refuses_missing_or_unknown_parameters() -> None:
    with pytest.raises(TypeError, match="missing"):
        routes.DATASET_FILE.url(dataset_id="x")
    with pytest.raises(TypeError, match="unexpected"):
        routes.PROJECTS.url(id="x")


def test_prefix_of_a_trailing_path_route() -> None:
    assert routes.DATASET_FILE.prefix_of(dataset_id="x") == "/api/warehouse/dataset/file/x/"
    with pytest.raises(TypeError):
        routes.TASK.prefix_of(task_id="x")


def test_extensions_are_ours_only() -> None:
    assert routes.DATASET_FILE in routes.EXTENSIONS
    assert routes.DATASET_DOWNLOAD not in routes.EXTENSIONS
