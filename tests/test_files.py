import os

import pytest

from adaattn_cli.errors import BadInputError
from adaattn_cli.files import publish


def _temporary_file(folder, text="new"):
    path = folder / ".out.tmp"
    path.write_text(text)
    return path


def test_publish_never_replaces_a_file_or_folder_that_appeared(tmp_path):
    (tmp_path / "out.png").write_text("theirs")
    temporary = _temporary_file(tmp_path)
    with pytest.raises(BadInputError, match="out.png exists"):
        publish(temporary, tmp_path / "out.png", overwrite=False)
    assert (tmp_path / "out.png").read_text() == "theirs" and temporary.exists()  # the caller deletes its temporary
    (tmp_path / "frames").mkdir()  # empty: rename() alone would replace it
    (tmp_path / ".frames.tmp").mkdir()
    with pytest.raises(BadInputError, match="frames exists"):
        publish(tmp_path / ".frames.tmp", tmp_path / "frames", overwrite=False)
    assert (tmp_path / "frames").is_dir() and not any((tmp_path / "frames").iterdir())


def test_publish_moves_files_and_folders_into_place(tmp_path, monkeypatch):
    publish(_temporary_file(tmp_path), tmp_path / "a.png", overwrite=False)
    (tmp_path / ".f.tmp").mkdir()
    (tmp_path / ".f.tmp" / "frame_000001.png").write_text("x")
    publish(tmp_path / ".f.tmp", tmp_path / "f", overwrite=False)
    publish(_temporary_file(tmp_path, "newer"), tmp_path / "a.png", overwrite=True)
    assert (tmp_path / "a.png").read_text() == "newer" and (tmp_path / "f" / "frame_000001.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "f"]

    def no_links(source, target):  # a filesystem without hard links
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    publish(_temporary_file(tmp_path), tmp_path / "b.png", overwrite=False)
    with pytest.raises(BadInputError, match="b.png exists"):
        publish(_temporary_file(tmp_path), tmp_path / "b.png", overwrite=False)
    assert (tmp_path / "b.png").read_text() == "new"
