"""The web app (Gradio) over the library: stylise a photo, a blend grid, a video (`adaattn gui`, docs/gui.md).

    studio = Studio(workdir)                                 # the work: models and encoded styles, cached
    picture = studio.stylize(photo, [(style, 1.0)], alpha=0.8)
    serve(host="127.0.0.1", port=7860, open_browser=True)    # the page over a Studio, until Ctrl-C

The work is the library's (Stylizer, video.plan_video/render_video, blend.py's blend grid); Studio keeps what may
be reused between clicks (loaded models, encoded styles: moving alpha renders anew without encoding the style
again), the page turns its inputs into Studio calls and a library error into one message in the page. Gradio is
imported only inside build() and serve(), torch only inside functions: `adaattn --help` loads neither."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..config import HOLD_THRESHOLD, STYLE_SIZE
from ..errors import AdaattnError, BadInputError, SettingError

if TYPE_CHECKING:
    import torch
    from gradio.blocks import Block

    from ..api import Style, Stylizer
    from ..image_io import LoadedImage

log = logging.getLogger(__name__)

EXAMPLES = next(
    (p for p in (Path(__file__).resolve().parents[2] / "examples", Path(sys.prefix) / "share" / "adaattn" / "examples") if p.is_dir()),
    None,
)
PHOTOS = ("bedroom", "football", "flowers")  # examples/<name>.jpg offered as photos
PAINTINGS = ("vangogh-wheat-field", "monet-water-lilies", "turner-shipwreck", "hoitsu-flowers")  # and as styles
MAX_STYLES = 4  # style slots in the page: a blend of up to this many (the CLI takes any number)
MAX_UPLOAD = "200mb"  # any one upload; images are also held to the CLI's pixel limit (--max-pixels)
MAX_CLIP_SECONDS = 60.0  # of a clip stylised at once: minutes of CPU per second of video
STYLE_CACHE = 16  # encoded styles kept (each a few MB)
SIZES = {"full size": 0, "1024 px": 1024, "768 px": 768, "512 px": 512}  # the longer side of the work (the CLI's --max-size)


class Studio:
    """The app's work, without Gradio: each call loads, stylises and returns what the page shows.

    Models and encoded styles are cached between calls; one call at a time (the page queues its jobs)."""

    def __init__(self, workdir: Path, device: str = "auto"):
        self.results = Path(workdir) / "results"
        self.device = device
        self._stylizers: dict[str, Stylizer] = {}
        self._styles: OrderedDict[tuple, Style] = OrderedDict()

    # -- models and styles ------------------------------------------------------------------------------------

    @staticmethod
    def models() -> list[tuple[str, str]]:
        """(label, name) of each model `adaattn models` lists; a name found twice is the first one (as --model NAME)."""
        from ..weights import installed_models

        seen: dict[str, str] = {}
        for path, header in installed_models():
            seen.setdefault(path.stem, f"{path.stem} ({header['method']})" if path.stem != header["method"] else path.stem)
        return [(label, name) for name, label in seen.items()]

    def stylizer(self, name: str) -> Stylizer:
        """The model `name` (one of models(): the page's choice is not trusted to be), loaded once."""
        if name not in self._stylizers:
            if name not in {known for _, known in self.models()}:
                raise BadInputError(f"no model named {name!r}; `adaattn models` lists them")
            from .inputs import load_stylizer

            self._stylizers[name] = load_stylizer(None, name, self.device)
        return self._stylizers[name]

    def style(self, model: str, path: Path, *, seed: int, recolour_to: torch.Tensor | None = None, key=None) -> Style:
        """The style image at `path` encoded by `model`, from the cache when it was encoded before; `recolour_to`
        (the photo, named by `key`) gives it the photo's colours first (preserve colour)."""
        from .. import functional as fn

        cache_key = (model, str(path), _stamp(path), seed, key)
        if cache_key in self._styles:
            self._styles.move_to_end(cache_key)
            return self._styles[cache_key]
        image = load_picture(path, "style", size=STYLE_SIZE).rgb
        if recolour_to is not None:
            image = fn.coral(image, recolour_to)
        style = self._styles[cache_key] = self.stylizer(model).encode_style(image, seed=seed)
        while len(self._styles) > STYLE_CACHE:
            self._styles.popitem(last=False)
        return style

    # -- the three jobs ---------------------------------------------------------------------------------------

    def stylize(self, photo: Path, styles: list[tuple[Path, float]], *, progress=None, **options) -> LoadedImage:
        """The photo in the styles, each (style image, weight) (several: a blend), at the photo's size; options as
        _renderer's. progress(done, total): refinement steps (or tiles)."""
        import dataclasses

        image, render = self._renderer(photo, [path for path, _ in styles], **options)
        return dataclasses.replace(image, rgb=render([weight for _, weight in styles], progress))

    def blend_grid(self, photo: Path, styles: list[tuple[Path, float]], *, progress=None, **options) -> torch.Tensor:
        """`adaattn blend-styles --grid`'s contact sheet: the photo, each style, and blends at several weights.
        progress(done, total): blends."""
        from .blend import blend_grid, grid_mixes

        if len(styles) < 2:
            raise BadInputError("the blend grid needs two or more styles: tick 'blend' and click another painting")
        weights = [weight for _, weight in styles]
        image, render = self._renderer(photo, [path for path, _ in styles], **options)
        named = [(path.stem, load_picture(path, "style", size=STYLE_SIZE).rgb) for path, _ in styles]
        total, done = len(grid_mixes(len(styles), weights)), 0

        def blend(mix):
            nonlocal done
            picture = render(mix, None)
            done += 1
            if progress is not None:
                progress(done, total)
            return picture

        return blend_grid(image.rgb, named, weights, blend)

    def _renderer(
        self,
        photo: Path,
        styles: list[Path],
        *,
        model: str = "adaattn",
        alpha: float = 1.0,
        preserve_color: bool = False,
        match_color: bool = True,
        mask: torch.Tensor | None = None,
        refine: int = 0,
        seed: int = 0,
        max_size: int = 0,
    ):
        """(the photo, render(weights, progress) -> picture): the photo loaded (max_size: its longer side at most,
        0: as it is) and the styles encoded, once for any number of weightings. mask [h, w]: where the styles apply."""
        from ..image_io import fit_mask

        if not styles:
            raise BadInputError("pick a style first: click a painting or upload one")
        image = load_picture(photo, "photo", max_size=max_size or None)
        recolour, key = (image.rgb, (str(photo), _stamp(photo), max_size)) if preserve_color else (None, None)
        encoded = [self.style(model, path, seed=seed, recolour_to=recolour, key=key) for path in styles]
        masks = None if mask is None else [fit_mask(mask, image.rgb.shape[-2:], "the mask")] * len(styles)
        stylizer = self.stylizer(model)

        def render(weights, progress):
            return stylizer.stylize(
                image.rgb,
                encoded,
                weights=weights,
                alpha=alpha,
                masks=masks,
                match_color=match_color,
                seed=seed,
                progress=progress,
                refine=refine,
                refine_progress=progress,
            )

        return image, render

    def video(
        self,
        clip: Path,
        style: Path,
        *,
        model: str | None = None,
        alpha: float = 1.0,
        size: int = 0,
        start: float = 0.0,
        duration: float = 0.0,
        refine: int = 0,
        hold: float = HOLD_THRESHOLD,
        seed: int = 0,
        progress: Callable[[int, int | None], None] | None = None,
        notes: Callable[[str], None] = log.info,
    ) -> Path:
        """`adaattn video`: the clip stylised, with its audio, as an mp4 in a new results folder; returns its path."""
        from ..video import default_palette, default_video_model, plan_video, render_video

        output = self._new_folder() / f"{Path(clip).stem}_stylized_{Path(style).stem}.mp4"
        plan = plan_video(clip, output, size=size or None, start=start or None, duration=duration or None)
        left = None if plan.info.duration is None else plan.info.duration - start  # what the clip has after `start`
        length = min(duration, left) if duration and left is not None else (duration or left)
        if length is None or length > MAX_CLIP_SECONDS:
            raise BadInputError(
                f"the app stylises up to {MAX_CLIP_SECONDS:g} s of a clip at a time; set a start and a duration, or use "
                "`adaattn video` for longer clips"
            )
        for note in plan.notes:
            notes(note)
        model = model or default_video_model()
        stylizer = self.stylizer(model)
        palette = default_palette(stylizer.model.method)  # as `adaattn video` by default (docs/video.md)
        done = 0

        def advance(frames: int) -> None:
            nonlocal done
            done += frames
            if progress is not None:
                progress(done, plan.expected_frames)

        render_video(
            stylizer,
            self.style(model, style, seed=seed),
            plan,
            alpha=alpha,
            seed=seed,
            palette=palette,
            image_stylizer=self.stylizer("adaattn") if palette == "image" else None,
            hold=hold,
            refine=refine,
            progress=advance,
        )
        return output

    def save(self, image: LoadedImage, name: str) -> Path:
        """Write a result as `name` (its extension picks the format) in a new folder: no two results share a path."""
        from ..image_io import save_image

        return save_image(self._new_folder() / name, image.rgb, alpha=image.alpha, icc_profile=image.icc_profile)

    def _new_folder(self) -> Path:
        folder = self.results / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder


def load_picture(path: Path, what: str, **sizes) -> LoadedImage:
    """image_io.load_resized, its errors naming the picture by its file name (an upload's path is a temporary one)."""
    from ..image_io import load_resized

    try:
        return load_resized(path, **sizes)
    except BadInputError as error:
        message = error.render(_app_wording) if isinstance(error, SettingError) else str(error)
        raise BadInputError(message.replace(str(path), f"{what} {Path(path).name}")) from None


def _app_wording(setting: str) -> str:
    """A library setting as the app's user meets it: the pixel limit is `adaattn gui`'s option, the rest controls."""
    return "adaattn gui --max-pixels" if setting == "max_pixels" else setting.replace("_", " ")


def _stamp(path: Path) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_mtime_ns, stat.st_size


def drawn_mask(editor: dict | None) -> torch.Tensor | None:
    """The mask drawn in the page's editor ({"layers": [files]}): 1 where any layer is painted; None if nothing is."""
    import torch

    from ..image_io import load_image

    alphas = [load_image(layer["path"]).alpha for layer in (editor or {}).get("layers") or [] if layer and layer.get("path")]
    painted = [alpha[0] for alpha in alphas if alpha is not None and bool((alpha > 0).any())]
    return torch.stack(painted).amax(dim=0).gt(0).float() if painted else None


def _file(payload) -> Path | None:
    """The server-side path of an uploaded file as the page sends it (the handlers take the raw payloads: their
    own checks word the errors, not Gradio's image decoder)."""
    if isinstance(payload, dict) and isinstance(payload.get("video"), dict):  # gr.Video: {"video": file, "subtitles": ...}
        payload = payload["video"]
    if isinstance(payload, dict) and payload.get("path"):
        return Path(payload["path"])
    return None


def _steps(progress, unit: str) -> Callable[[int, int | None], None]:
    """progress(done, total) for a gr.Progress, with the time left in the label: at the pace since the first report
    (before it the model loads and the style is encoded, which the steps after it do not repeat)."""
    first = None

    def advance(done: int, total: int | None) -> None:
        nonlocal first
        now = time.perf_counter()
        first = first or (now, done)
        left = (now - first[0]) / (done - first[1]) * (total - done) if total and done > first[1] else None
        label = f"{unit} {done}/{total or '?'}" + (f", about {left:.0f} s left" if left is not None else "")
        progress((done, total), desc=label, unit=unit)

    return advance


# -- the page ------------------------------------------------------------------------------------------------


def build(studio: Studio):
    """The gr.Blocks page over `studio`."""
    import functools

    import gradio as gr

    def in_page(handler):
        """A library error becomes one message in the page (gr.Error); anything else too, logged with its traceback."""

        @functools.wraps(handler)  # Gradio finds the gr.Progress parameter in the handler's signature
        def wrapped(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except gr.Error:
                raise
            except AdaattnError as error:
                message = error.render(_app_wording) if isinstance(error, SettingError) else str(error)
                raise gr.Error(message, print_exception=False) from None
            except Exception as error:
                log.exception("the app's %s failed", handler.__name__)
                raise gr.Error(f"{type(error).__name__}: {error}", print_exception=False) from None

        return wrapped

    photos = [str(EXAMPLES / f"{name}.jpg") for name in PHOTOS if EXAMPLES and (EXAMPLES / f"{name}.jpg").is_file()]
    paintings = [str(EXAMPLES / f"{name}.jpg") for name in PAINTINGS if EXAMPLES and (EXAMPLES / f"{name}.jpg").is_file()]
    models = studio.models()
    names = [name for _, name in models]
    image_model = "adaattn" if "adaattn" in names else (names[0] if names else None)

    # -- layout -----------------------------------------------------------------------------------------------

    with gr.Blocks(title="adaattn", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("## adaattn: paint a photo in the style of a picture\nEverything runs on this computer; nothing leaves it.")
        styles = gr.State([paintings[0]] if paintings else [])  # paths of the chosen styles, in slot order
        shown = gr.State(False)  # a picture is shown: moving alpha renders a new one
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"], elem_id="photo", height=300)
                if photos:
                    gr.Examples([[p] for p in photos], inputs=[photo], label="Example photos")
                gallery = gr.Dataset(
                    components=["image"],
                    samples=[[p] for p in paintings],
                    type="index",
                    layout="gallery",
                    label="Styles: click a painting",
                    elem_id="paintings",
                )
                with gr.Row():
                    blend = gr.Checkbox(False, label="Blend: a click adds the painting", elem_id="blend")
                    upload = gr.UploadButton("Upload a style", file_types=["image"], size="sm", elem_id="upload-style")
                slot_parts, weights, removers = [], [], []
                for i in range(MAX_STYLES):
                    with gr.Row(visible=i == 0 and bool(paintings), equal_height=False) as row:
                        thumb = gr.Image(
                            paintings[0] if i == 0 and paintings else None,
                            show_label=False,
                            interactive=False,
                            height=72,
                            container=False,
                            buttons=[],
                            scale=1,
                            min_width=72,
                        )
                        weight = gr.Slider(0, 1, value=1, step=0.05, label=f"weight {i + 1}", visible=False, scale=3, elem_id=f"weight-{i}")
                        remove = gr.Button("✕ remove", size="sm", scale=1, min_width=60)
                    slot_parts += [row, thumb, weight]
                    weights.append(weight)
                    removers.append(remove)
            with gr.Column(scale=2):
                with gr.Row():
                    alpha = gr.Slider(0, 1, value=1, step=0.05, label="Style strength (alpha)", elem_id="alpha", scale=3)
                    preserve = gr.Checkbox(False, label="Keep the photo's colours", scale=1)
                with gr.Accordion("More settings", open=False):
                    with gr.Row():
                        model = gr.Dropdown(
                            models, value=image_model, label="Model", info="as `adaattn models` lists them", elem_id="model"
                        )
                        size = gr.Dropdown(list(SIZES), value="full size", label="Work at", info="the longer side; smaller is faster")
                        refine = gr.Slider(
                            0, 200, value=0, step=1, label="Refine", info="--refine N; 50: painted, ~12x slower", elem_id="refine"
                        )
                        seed = gr.Number(0, precision=0, minimum=0, label="Seed", info="of the style positions sampled")
                        match = gr.Checkbox(True, label="The painting's overall colour", info="off: the model's own colours")
                    with gr.Row():
                        mask_editor = gr.ImageMask(
                            label="Mask: paint where the style applies",
                            type="filepath",
                            sources=[],
                            height=260,
                            brush=gr.Brush(colors=["#ff3366"], color_mode="fixed"),
                            layers=False,
                        )
                        mask_file = gr.File(label="or a mask file (white: style)", file_types=["image"], height=120)
                with gr.Tabs():
                    with gr.Tab("Picture"):
                        with gr.Row():
                            kind = gr.Radio(["PNG", "JPEG"], value="PNG", label="Save as", scale=1)
                            go = gr.Button("Stylize", variant="primary", elem_id="stylize", scale=2)
                        result = gr.ImageSlider(label="Photo | result: drag to compare", type="filepath", elem_id="result")
                        download = gr.File(label="Download, at the photo's size", elem_id="download", height=80)
                    with gr.Tab("Blend grid"):
                        grid_go = gr.Button("Make the blend grid (two or more styles)", variant="primary", elem_id="grid")
                        sheet = gr.Image(label="Blend grid", type="filepath", interactive=False, elem_id="sheet")
                        sheet_file = gr.File(label="Download", elem_id="sheet-download", height=80)
                    with gr.Tab("Video"):
                        clip = gr.Video(label="Clip", sources=["upload"], elem_id="clip", height=260)
                        with gr.Row():
                            video_model = gr.Dropdown(
                                models, value="adaattn-video" if "adaattn-video" in names else image_model, label="Model"
                            )
                            video_size = gr.Number(0, precision=0, minimum=0, label="Shorter side, px", info="0: the clip's")
                            start = gr.Number(0, minimum=0, label="Start, s", info="skip this much")
                            duration = gr.Number(0, minimum=0, label="Duration, s", info=f"0: to the end; at most {MAX_CLIP_SECONDS:g} s")
                        with gr.Row():
                            video_refine = gr.Slider(
                                0, 16, value=0, step=1, label="Refine steps per frame", info="4: more style, steady, slow"
                            )
                            hold = gr.Slider(
                                0, 0.1, value=HOLD_THRESHOLD, step=0.005, label="Hold", info="still parts keep their paint; 0: off"
                            )
                        video_go = gr.Button("Stylize the clip", variant="primary", elem_id="video-go")
                        video_out = gr.Video(label="Stylized clip", interactive=False, elem_id="video-out", height=320)

        # -- handlers: raw payloads in (preprocess=False), so that the library's checks word the errors ---------

        def slots(chosen):
            """The style slots: one shown per chosen style, their weights only for a blend."""
            updates = []
            for i in range(MAX_STYLES):
                updates += [gr.update(visible=i < len(chosen)), chosen[i] if i < len(chosen) else None, gr.update(visible=len(chosen) > 1)]
            return [chosen, *updates]

        def add_style(chosen, blending, path):
            if not blending:
                return slots([path])
            if path in chosen:
                return slots(chosen)
            if len(chosen) >= MAX_STYLES:
                raise gr.Error(f"a blend takes up to {MAX_STYLES} styles here; remove one first")
            return slots([*chosen, path])

        def pick_painting(index, chosen, blending):
            return add_style(chosen, blending, paintings[index])

        @in_page
        def upload_style(chosen, blending, payload):
            path = _file(payload)
            load_picture(path, "style")  # refused now, with its reason, rather than at the next click
            return add_style(chosen, blending, str(path))

        def remove_style(index):
            def remove(chosen, *values):
                kept = [i for i in range(len(chosen)) if i != index]
                moved = [gr.update(value=values[i]) for i in kept] + [gr.update(value=1)] * (MAX_STYLES - len(kept))
                return slots([chosen[i] for i in kept]) + moved

            return remove

        @in_page
        def check_photo(payload):
            if _file(payload) is not None:
                load_picture(_file(payload), "photo")

        def mask_canvas(payload):
            """The mask editor shows the photo to paint on."""
            return {"background": str(_file(payload)), "layers": [], "composite": None} if _file(payload) else None

        def options(v) -> tuple[Path, list[tuple[Path, float]], dict]:
            path = _file(v[photo])
            if path is None:
                raise BadInputError("pick a photo first: drop one in, or click an example")
            mask_path = _file(v[mask_file])
            mask = load_picture(mask_path, "mask").rgb.mean(dim=0) if mask_path else drawn_mask(v[mask_editor])
            chosen = [(Path(p), float(v[w])) for p, w in zip(v[styles], weights)]
            settings = dict(
                model=v[model],
                alpha=float(v[alpha]),
                mask=mask,
                match_color=bool(v[match]),
                refine=int(v[refine] or 0),
                seed=int(v[seed] or 0),
                max_size=SIZES.get(v[size], 0),
            )
            return path, chosen, settings

        @in_page
        def render(v, progress=gr.Progress()):
            path, chosen, settings = options(v)
            result = studio.stylize(path, chosen, preserve_color=bool(v[preserve]), progress=_steps(progress, "steps"), **settings)
            name = f"{path.stem}_stylized_{'+'.join(p.stem for p, _ in chosen)}.{'jpg' if v[kind] == 'JPEG' else 'png'}"
            saved = str(studio.save(result, name))
            return (str(path), saved), saved, True

        @in_page
        def save_as(current, choice):
            """The picture shown, in the format chosen after it was made (no new rendering)."""
            from ..image_io import load_image

            path, suffix = _file(current), ".jpg" if choice == "JPEG" else ".png"
            if path is None or path.suffix == suffix:
                return gr.skip()
            return str(studio.save(load_image(path), path.stem + suffix))

        @in_page
        def rerender(v, progress=gr.Progress()):
            """Alpha moved: a new picture if one is shown (its styles stay encoded)."""
            return render(v, progress) if v[shown] else (gr.skip(), gr.skip(), gr.skip())

        @in_page
        def grid(v, progress=gr.Progress()):
            from ..image_io import LoadedImage

            path, chosen, settings = options(v)
            sheet_image = studio.blend_grid(path, chosen, progress=_steps(progress, "blends"), **settings)
            saved = str(studio.save(LoadedImage(sheet_image, None, None, None), f"{path.stem}_blend_grid.png"))
            return saved, saved

        @in_page
        def stylize_clip(v, progress=gr.Progress()):
            path = _file(v[clip])
            if path is None:
                raise BadInputError("drop a clip in first")
            if len(v[styles]) != 1:
                raise BadInputError("a video takes one style: untick 'blend' and click one painting")
            return str(
                studio.video(
                    path,
                    Path(v[styles][0]),
                    model=v[video_model],
                    alpha=float(v[alpha]),
                    size=int(v[video_size] or 0),
                    start=float(v[start] or 0),
                    duration=float(v[duration] or 0),
                    refine=int(v[video_refine] or 0),
                    hold=float(v[hold]),
                    seed=int(v[seed] or 0),
                    progress=_steps(progress, "frames"),
                    notes=gr.Info,
                )
            )

        slot_outputs = [styles, *slot_parts]
        quick: dict[str, Any] = {"show_progress": "hidden"}  # no spinner, nor an error cover, over the style slots
        gallery.click(pick_painting, [gallery, styles, blend], slot_outputs, **quick)
        upload.upload(upload_style, [styles, blend, upload], slot_outputs, preprocess=False, **quick)
        for i, remove in enumerate(removers):
            remove.click(remove_style(i), [styles, *weights], slot_outputs + weights, **quick)
        photo.upload(check_photo, photo, None, preprocess=False)
        photo.change(mask_canvas, photo, mask_editor, preprocess=False, queue=False)
        picture_inputs: set[Block]  # a set: the handlers get {component: value}
        picture_inputs = {photo, styles, shown, *weights, alpha, preserve, model, mask_editor, mask_file, refine, seed, match, size, kind}
        work: dict[str, Any] = {"concurrency_id": "work", "concurrency_limit": 1, "preprocess": False}  # one job at a time, queued
        go.click(render, picture_inputs, [result, download, shown], **work)
        # live: each move of alpha renders anew once a picture is shown; moves made meanwhile collapse into the last one
        alpha.input(rerender, picture_inputs, [result, download, shown], trigger_mode="always_last", **work)
        kind.input(save_as, [download, kind], download, preprocess=False)
        grid_go.click(grid, picture_inputs, [sheet, sheet_file], **work)
        video_inputs: set[Block] = {clip, styles, alpha, seed, video_model, video_size, start, duration, video_refine, hold}
        video_go.click(stylize_clip, video_inputs, video_out, **work)
    return page


def serve(*, host: str = "127.0.0.1", port: int | None = None, open_browser: bool = True, device: str = "auto") -> None:
    """Run the app until Ctrl-C or SIGTERM; its temporary files (uploads, results) go with it. Its address, and that
    it stopped, are printed on stdout (flushed: a script may wait for the address).

    Private by construction: no analytics or telemetry, no share tunnel, no run history, no monitoring endpoint,
    the theme's fonts served by the app itself (nothing is fetched from the internet)."""
    workdir = Path(tempfile.mkdtemp(prefix="adaattn-gui-"))
    # Read when Gradio is imported: every upload and result lives under workdir, removed on exit.
    os.environ.update(
        GRADIO_TEMP_DIR=str(workdir / "gradio"), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1"
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    page = None
    try:
        page = build(Studio(workdir, device=device))
        try:
            _, url, _ = page.launch(
                server_name=host,
                server_port=port,
                inbrowser=open_browser,
                prevent_thread_lock=True,
                quiet=True,
                share=False,
                max_file_size=MAX_UPLOAD,
                show_error=True,
                run_history=False,
                enable_monitoring=False,
                mcp_server=False,
                ssr_mode=False,
                pwa=False,
                footer_links=[],
                allowed_paths=[str(EXAMPLES)] if EXAMPLES else None,
            )
        except OSError:  # Gradio's "Cannot find empty port": taken, or not an address of this computer
            where = f"port {port}" if port else "any port from 7860"
            raise BadInputError(
                f"cannot serve on {host}, {where}: in use, or not this computer's address; pick another --port or --host"
            ) from None
        print(f"adaattn gui: {url} (Ctrl-C stops it)", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("adaattn gui: stopped", flush=True)
    finally:
        if page is not None:
            page.close()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)
    if threading.active_count() > 1:
        # A job still runs (a long refinement, a video) in one of Gradio's worker threads: Python's exit would wait
        # for it, and torch's threads then abort the teardown. The port is closed and the files gone: end here.
        os._exit(0)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops the app as Ctrl-C does: its temporary files are removed
