import os
import stat

import pytest
import torch

from adaattn_cli.errors import BadInputError, OutputExistsError
from adaattn_cli.files import check_target, publish


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


def test_overwrite_replaces_files_never_devices_pipes_or_sockets(tmp_path):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)  # like /dev/null (which only root could make here): renaming over it would put a file in its place
    for replace in (lambda: check_target(pipe, overwrite=True), lambda: publish(_temporary_file(tmp_path), pipe, overwrite=True)):
        with pytest.raises(BadInputError, match="not a regular file"):
            replace()
        assert stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_a_target_inside_a_file_is_refused_before_the_work(tmp_path):
    (tmp_path / "file").write_text("x")  # as -o /dev/null/out.png would be
    with pytest.raises(BadInputError, match="file is not a folder"):
        check_target(tmp_path / "file" / "sub" / "out.png", overwrite=True)


def test_an_existing_output_is_named_with_the_library_s_argument(tmp_path):
    from adaattn_cli.image_io import save_image

    (tmp_path / "a.png").write_text("theirs")
    with pytest.raises(OutputExistsError, match="overwrite=True") as refused:
        save_image(tmp_path / "a.png", torch.zeros(3, 4, 4))
    assert "--overwrite" not in str(refused.value) and (tmp_path / "a.png").read_text() == "theirs"
