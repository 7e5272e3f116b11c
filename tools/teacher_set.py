"""Make (or go on making) a teacher set for `adaattn train --teacher-set` (adaattn_cli/teacher_set.py).

    python tools/teacher_set.py -c ../shared/data/train/content -s ../shared/data/train/style -o runs/teacher-set

Each triple is a training sample (content and style crops) and the bundled model's picture of it refined as
`stylize --refine 100` refines (seconds per 256-px triple on a 2-core CPU). Stop it at any time
and run the same command again: finished triples are kept. The set stays out of git (runs/ is ignored).
"""

import argparse
import time

from adaattn_cli.teacher_set import TeacherSetSpec, generate


def main() -> None:
    defaults = TeacherSetSpec()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--content", required=True, help="folder of content photos (as for adaattn train)")
    parser.add_argument("-s", "--style", required=True, help="folder of style artworks")
    parser.add_argument("-o", "--output", required=True, help="the teacher set's folder")
    parser.add_argument("--count", type=int, default=defaults.count, help="triples in the set")
    parser.add_argument("--model", default=defaults.model, help="the model whose pictures are refined")
    parser.add_argument("--refine", type=int, default=defaults.refine_steps, help="refinement budget per picture (stylize's --refine N)")
    parser.add_argument("--crop-size", type=int, default=defaults.crop_size)
    parser.add_argument("--load-size", type=int, default=defaults.load_size)
    parser.add_argument("--holdout", type=int, default=defaults.holdout, help="as adaattn train --holdout")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--precision", default=defaults.precision)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--no-match-color",
        dest="match_color",
        action="store_false",
        help="refine from the model's own colours (as sets made before the colour step were)",
    )
    args = parser.parse_args()
    spec = TeacherSetSpec(
        model=args.model,
        refine_steps=args.refine,
        count=args.count,
        crop_size=args.crop_size,
        load_size=args.load_size,
        holdout=args.holdout,
        seed=args.seed,
        precision=args.precision,
        match_color=args.match_color,
    )
    started, first = time.time(), None

    def progress(done: int, total: int) -> None:
        nonlocal first
        first = first or done
        rate = (time.time() - started) / (done - first + 1)
        print(f"{done}/{total}  {rate:.1f} s per triple  eta {(total - done) * rate / 3600:.1f} h", flush=True)

    written = generate(args.content, args.style, args.output, spec, device=args.device, progress=progress)
    print(f"{written} triples written to {args.output} in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
