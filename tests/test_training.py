import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import exact_stylizer
from PIL import Image

from adaattn_cli.errors import BadInputError
from adaattn_cli.losses import LossConfig
from adaattn_cli.training import Interrupted, TrainConfig, Trainer, lr_factor
from adaattn_cli.weights import load_model, read_model_header


def _write_images(folder, count, seed, kind):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:80, 0:96] / 16.0
    for index in range(count):
        if kind == "content":  # smooth shapes
            image = np.stack([np.sin(x * rng.uniform(0.3, 1.5) + rng.uniform(0, 6)) for _ in range(3)], -1) * 0.5 + 0.5
        else:  # high-frequency coloured texture
            image = rng.random((80, 96, 3)) ** rng.uniform(0.5, 3, size=3)
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{kind}{index}.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _write_images(root / "content", 6, 0, "content")
    _write_images(root / "style" / "nested", 6, 1, "style")
    (root / "content" / "broken.jpg").write_text("not an image")
    return root


def _config(data, tmp_path, method, **overrides):
    settings = dict(
        method=method,
        content=str(data / "content"),
        style=str(data / "style"),
        output=str(tmp_path / "model.safetensors"),
        workdir=str(tmp_path / "work"),
        max_steps=30,
        batch_size=2,
        crop_size=64,
        load_size=64,
        lr=1e-3,
        width_divisor=8,
        workers=0,
        holdout=0,
        checkpoint_every=10,
        sample_every=1000,
        device="cpu",
        precision="fp32",  # bf16 is slower on tiny convs
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.mark.slow  # a training run
@pytest.mark.parametrize("method", ["adaattn", "adaattn-video", "adain", "sanet"])
def test_loss_decreases_and_the_model_loads_in_stylize(data, tmp_path, method):
    losses = LossConfig.for_method(method)
    if method == "adaattn-video":  # a tiny random model's similarity term is ~5x a real one's: at x2e4 it swamps 30 steps
        losses.similarity = 100.0
    trainer = Trainer(_config(data, tmp_path, method, losses=losses))
    path = trainer.run()
    totals = [record["total"] for record in trainer.history]
    assert np.mean(totals[-5:]) < 0.9 * np.mean(totals[:5])
    assert trainer.skipped == 1  # broken.jpg, reported and skipped
    header = read_model_header(path)
    assert header["method"] == method and header["provenance"]["steps"] == 30
    model = load_model(path, encoder=trainer.model.encoder)
    out = exact_stylizer(model).stylize(torch.rand(3, 48, 64), [torch.rand(3, 64, 64)])
    assert out.shape == (3, 48, 64)
    assert (tmp_path / "work" / "losses.png").is_file() and (tmp_path / "work" / "latest.safetensors").is_file()
    assert len(list((tmp_path / "work" / "samples").glob("*.png"))) == 1


@pytest.mark.slow  # a training run
def test_resume_after_interrupt_reproduces_the_uninterrupted_run(data, tmp_path):
    whole = Trainer(_config(data, tmp_path / "a", "adaattn", max_steps=8, log_every=1))
    whole.run()

    def stop_at_four(step, total, losses):
        if step == 4:
            raise KeyboardInterrupt

    config = _config(data, tmp_path / "b", "adaattn", max_steps=8, log_every=1)
    first = Trainer(config)
    with pytest.raises(Interrupted, match="stopped at step 4"):
        first.run(progress=stop_at_four)
    resumed = Trainer(config, resume=True)
    assert resumed.step == 4
    resumed.run()
    expected = [r["total"] for r in whole.history]
    got = [json.loads(line)["total"] for line in (tmp_path / "b" / "work" / "log.jsonl").read_text().splitlines()]
    assert got == pytest.approx(expected, rel=1e-6, abs=0)


def test_resume_refuses_a_different_setup(data, tmp_path):
    Trainer(_config(data, tmp_path, "adain", max_steps=2)).run()
    with pytest.raises(Exception, match="crop_size"):
        Trainer(_config(data, tmp_path, "adain", max_steps=4, crop_size=48), resume=True)


def test_a_config_read_back_from_json_accepts_the_earlier_loss_names(data, tmp_path):
    """Checkpoints and model files written before identity1/identity2 became identity_pixels/identity_features."""
    saved = json.loads(json.dumps({**vars(LossConfig.for_method("sanet")), "identity_pixels": 5.0}))
    saved["identity1"], saved["identity2"] = saved.pop("identity_pixels"), saved.pop("identity_features")
    losses = _config(data, tmp_path, "sanet", losses=saved).losses
    assert losses == LossConfig(**{**vars(LossConfig.for_method("sanet")), "identity_pixels": 5.0})


def test_a_run_logged_under_the_earlier_loss_names_resumes_and_finishes(data, tmp_path):
    Trainer(_config(data, tmp_path, "sanet", max_steps=2, log_every=1, checkpoint_every=2)).run()
    log = tmp_path / "work" / "log.jsonl"
    log.write_text(log.read_text().replace('"identity_pixels"', '"identity1"').replace('"identity_features"', '"identity2"'))
    resumed = Trainer(_config(data, tmp_path, "sanet", max_steps=3, log_every=1, checkpoint_every=2), resume=True)
    assert {"identity_pixels", "identity_features"} <= set(resumed.history[0])
    header = read_model_header(resumed.run())
    assert header["provenance"]["final_losses"]["identity_pixels"] > 0


def test_step_schedule_follows_the_official_recipe():
    # 5 "epochs" of 20 steps: x1, x1, x0.3, x0.09, x0.027
    factors = [lr_factor("step", s, 100) for s in (0, 39, 40, 59, 60, 80, 99)]
    assert factors == pytest.approx([1, 1, 0.3, 0.3, 0.09, 0.027, 0.027])


def test_warp_consistency_loss_vanishes_only_for_an_output_that_moves_with_the_content():
    from adaattn_cli.data import shifted_view
    from adaattn_cli.losses import warp_consistency_loss

    smooth = torch.nn.functional.interpolate(
        torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0)), size=96, mode="bilinear"
    )[0]
    view, motion = shifted_view(smooth, np.random.default_rng(1))
    assert warp_consistency_loss(smooth[None], view[None], motion[None]) < 1e-4  # the view is the warped image
    assert warp_consistency_loss(smooth[None], smooth[None], motion[None]) > 0.02  # a static output does not follow


def test_warp_consistency_loss_of_a_batch_is_the_mean_of_its_halves():
    # Under torchrun each process takes a slice of the batch and DDP averages: the slices' losses must average
    # to the whole batch's, even when the views' valid areas differ.
    from adaattn_cli.data import shifted_view
    from adaattn_cli.losses import warp_consistency_loss

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    views = [shifted_view(image, np.random.default_rng(seed)) for seed, image in enumerate(images)]
    motion = torch.stack([m for _, m in views])
    outputs = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    whole = float(warp_consistency_loss(images, outputs, motion))
    halves = [float(warp_consistency_loss(images[i : i + 1], outputs[i : i + 1], motion[i : i + 1])) for i in range(2)]
    assert whole == pytest.approx((halves[0] + halves[1]) / 2, rel=1e-6)


def test_style_layer_weights_scale_each_layers_term():
    from adaattn_cli.losses import global_style_loss

    generator = torch.Generator().manual_seed(0)
    output = [torch.rand(2, 4, 6, 6, generator=generator) for _ in range(3)]
    style = [torch.rand(2, 4, 5, 5, generator=generator) * 2 for _ in range(3)]
    per_layer = [global_style_loss(output, style, (layer,)) for layer in (1, 2, 3)]
    assert global_style_loss(output, style, (1, 2, 3)) == pytest.approx(float(sum(per_layer)), rel=1e-6)
    weighted = global_style_loss(output, style, (1, 2, 3), (3.0, 0.5, 1.0))
    assert weighted == pytest.approx(float(3 * per_layer[0] + 0.5 * per_layer[1] + per_layer[2]), rel=1e-6)


def test_colour_distillation_loss_sees_coarse_colour_not_fine_texture():
    from adaattn_cli.losses import colour_distillation_loss

    teacher = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    checkerboard = (torch.arange(32)[:, None] + torch.arange(40)[None]) % 2 * 0.2 - 0.1  # zero mean per 8x8 block
    assert colour_distillation_loss(teacher, teacher, 8) == 0
    assert colour_distillation_loss(teacher + checkerboard, teacher, 8) < 1e-6
    assert colour_distillation_loss(teacher + 0.1, teacher, 8) == pytest.approx(0.1, rel=1e-5)


def test_palette_loss_sees_the_overall_colour_not_where_it_is():
    from adaattn_cli.losses import palette_loss

    style = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    output = style[:, :, :32, :40]  # a crop of another size, as the training outputs are
    rearranged = style.flip(-1).roll(7, dims=-2)
    assert palette_loss(style, style) == 0 and palette_loss(rearranged, style) < 1e-12
    assert palette_loss(output + 0.1, output) == pytest.approx(0.01, rel=1e-4)
    assert palette_loss(style.mean(dim=1, keepdim=True).expand_as(style), style) > 0  # grey is not the painting's colour


@pytest.mark.slow  # a training run
def test_the_palette_term_pulls_the_outputs_colour_toward_the_styles(data, tmp_path):
    losses = LossConfig(style=0.0, local=0.0, colour=1.0)
    trainer = Trainer(_config(data, tmp_path, "adaattn", losses=losses, log_every=1))  # 30 steps: ~0.13 -> ~0.015
    path = trainer.run()
    distance = [record["colour"] for record in trainer.history]
    assert np.mean(distance[-5:]) < 0.5 * np.mean(distance[:5])
    assert read_model_header(path)["provenance"]["losses"]["colour"] == 1.0


@pytest.mark.slow  # a training run
def test_a_teacher_models_colours_are_distilled(data, tmp_path):
    teacher_run = Trainer(_config(data, tmp_path / "teacher", "adaattn", max_steps=1))
    teacher_path = teacher_run.run()
    losses = LossConfig.for_method("adaattn-video")
    losses.teacher = 1e3
    trainer = Trainer(_config(data, tmp_path, "adaattn-video", max_steps=2, losses=losses, teacher=str(teacher_path)))
    assert trainer.teacher is not None and not any(p.requires_grad for p in trainer.teacher.parameters())
    path = trainer.run()
    assert all(record["teacher"] > 0 for record in trainer.history)
    provenance = read_model_header(path)["provenance"]
    assert provenance["teacher"] == teacher_path.name and provenance["losses"]["teacher"] == 1e3
    with pytest.raises(BadInputError, match="teacher"):  # a teacher without a weight (or the reverse) is a mistake
        _config(data, tmp_path, "adaattn-video", teacher=str(teacher_path))


def _corrupt_checkpoint(path, kind):
    import os

    if kind == "truncated":
        torch.save({"step": 1, "model": {"weight": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif kind == "pickle":

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {path.parent / 'PWNED'}",))

        torch.save({"step": Payload()}, path)
    elif kind == "structure":
        torch.save({"step": "three", "model": [1, 2]}, path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "shapes":  # the right structure, another model's tensors
        torch.save(
            {
                "step": 3,
                "model": {"decoder.convs.0.weight": torch.zeros(1)},
                "optimizer": {},
                "scheduler": {},
                "rng": torch.get_rng_state(),
                "config": json.dumps(
                    {"method": "adain", "crop_size": 64, "batch_size": 2, "seed": 0, "encoder": "vgg16-hed", "width_divisor": 8}
                ),
            },
            path,
        )


@pytest.mark.parametrize("kind", ["truncated", "random", "pickle", "structure", "list", "shapes"])
def test_a_corrupt_checkpoint_is_refused_and_nothing_is_changed(data, tmp_path, kind):
    work = tmp_path / "work"
    work.mkdir()
    _corrupt_checkpoint(work / "checkpoint.pt", kind)
    (work / "log.jsonl").write_text('{"step": 5}\n')
    (work / "validation.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    with pytest.raises(BadInputError, match="checkpoint.pt: .*nothing was changed"):
        Trainer(_config(data, tmp_path, "adain"), resume=True)
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before  # no PWNED file either


def test_a_start_that_fails_leaves_no_workdir(data, tmp_path):
    (tmp_path / "empty").mkdir()
    for content in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(BadInputError):
            Trainer(_config(data, tmp_path, "adain", content=str(content)))
        assert not (tmp_path / "work").exists()


def _make_teacher_set(data, tmp_path, count=4, holdout=0, directory=None):
    """A teacher set (teacher_set.generate) of a 1-step tiny model's pictures, each refined for 2 steps."""
    from adaattn_cli.teacher_set import TeacherSetSpec, generate

    run = Trainer(_config(data, tmp_path / "model", "adaattn", max_steps=1, holdout=holdout))
    model_path = run.run()
    spec = TeacherSetSpec(model=str(model_path), refine_steps=2, count=count, crop_size=64, load_size=64, holdout=holdout, precision="fp32")
    stylizer = exact_stylizer(load_model(model_path, encoder=run.model.encoder), device="cpu", precision="fp32")
    directory = directory or tmp_path / "teacher-set"
    written = generate(data / "content", data / "style", directory, spec, stylizer=stylizer)
    return directory, spec, stylizer, written


def _distilling(data, tmp_path, teacher_set, **overrides):
    losses = LossConfig(style=0.0, local=0.0, distill=1.0, distill_features=1e-3)
    return _config(data, tmp_path, "adaattn", losses=losses, teacher_set=str(teacher_set), **overrides)


@pytest.mark.slow  # training runs
def test_distillation_pulls_the_output_toward_the_refined_pictures(data, tmp_path):
    teacher_set, _, _, written = _make_teacher_set(data, tmp_path)
    assert written == 4 and len(list(teacher_set.glob("*.png"))) == 4
    trainer = Trainer(_distilling(data, tmp_path, teacher_set, max_steps=30, log_every=1))
    assert len(trainer.teacher_triples) == 4
    path = trainer.run()
    distance = [record["distill"] for record in trainer.history]
    assert np.mean(distance[-5:]) < 0.8 * np.mean(distance[:5])
    record = read_model_header(path)["provenance"]["teacher_set"]
    assert record["used"] == 4 and record["refine_steps"] == 2 and len(record["model_sha256"]) == 64


def test_a_teacher_set_is_made_once_and_goes_on_where_it_stopped(data, tmp_path):
    from adaattn_cli.teacher_set import TeacherSetData, generate

    teacher_set, spec, stylizer, _ = _make_teacher_set(data, tmp_path, count=2)
    first = (teacher_set / "000000.png").read_bytes()
    assert generate(data / "content", data / "style", teacher_set, spec, stylizer=stylizer) == 0  # nothing left to do
    (teacher_set / "000001.png").unlink()  # as if stopped before it
    assert generate(data / "content", data / "style", teacher_set, spec, stylizer=stylizer) == 1
    assert (teacher_set / "000000.png").read_bytes() == first
    with pytest.raises(BadInputError, match="other refine_steps"):
        generate(data / "content", data / "style", teacher_set, dataclasses.replace(spec, refine_steps=3), stylizer=stylizer)
    manifest = json.loads((teacher_set / "teacher-set.json").read_text())
    del manifest["refine_meaning"]  # a set made while --refine N counted steps goes on only with that schedule
    (teacher_set / "teacher-set.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match="other refine_meaning"):
        generate(data / "content", data / "style", teacher_set, spec, stylizer=stylizer)
    sample = TeacherSetData(sorted(teacher_set.glob("0*.png")), seed=0, crop_size=48)[5]
    assert {k: tuple(v.shape) for k, v in sample.items()} == {"content": (3, 48, 48), "style": (3, 64, 64), "refined": (3, 48, 48)}


@pytest.mark.slow  # training runs
def test_resume_keeps_the_teacher_set_it_started_with(data, tmp_path):
    teacher_set, spec, stylizer, _ = _make_teacher_set(data, tmp_path, count=3)
    whole = Trainer(_distilling(data, tmp_path / "a", teacher_set, max_steps=6, log_every=1))
    whole.run()

    def stop_at_three(step, total, losses):
        if step == 3:
            raise KeyboardInterrupt

    config = _distilling(data, tmp_path / "b", teacher_set, max_steps=6, log_every=1)
    with pytest.raises(Interrupted):
        Trainer(config).run(progress=stop_at_three)
    from adaattn_cli.teacher_set import generate

    generate(data / "content", data / "style", teacher_set, dataclasses.replace(spec, count=5), stylizer=stylizer)  # the set grew
    resumed = Trainer(_distilling(data, tmp_path / "b", teacher_set, max_steps=6, log_every=1), resume=True)
    assert resumed.config.teacher_set_size == 3
    resumed.run()
    expected = [r["total"] for r in whole.history]
    got = [json.loads(line)["total"] for line in (tmp_path / "b" / "work" / "log.jsonl").read_text().splitlines()]
    assert got == pytest.approx(expected, rel=1e-6, abs=0)
    with pytest.raises(BadInputError, match="teacher_set_size"):  # resuming without the teacher set is another run
        Trainer(_config(data, tmp_path / "b", "adaattn", max_steps=8), resume=True)


def test_a_teacher_set_of_other_images_is_refused(data, tmp_path):
    teacher_set, *_ = _make_teacher_set(data, tmp_path, count=1)
    with pytest.raises(BadInputError, match="made from other training images"):
        Trainer(_distilling(data, tmp_path, teacher_set, holdout=2))  # another split: held-out images may be in the set
    with pytest.raises(BadInputError, match="not a teacher set"):
        Trainer(_distilling(data, tmp_path, data / "content"))
    with pytest.raises(BadInputError, match="go together"):
        _config(data, tmp_path, "adaattn", teacher_set=str(teacher_set))


def test_library_errors_name_settings_in_the_librarys_terms(data, tmp_path):
    """The library says crop_size; the CLI (tests/cli/test_train_command.py) says --crop-size for the same error."""
    from adaattn_cli.errors import SettingError

    with pytest.raises(SettingError, match=r"^crop_size must be a multiple of 16") as caught:
        _config(data, tmp_path, "adain", crop_size=40)
    assert "--" not in str(caught.value)
    assert caught.value.render(lambda name: "--" + name.replace("_", "-")).startswith("--crop-size must be")
