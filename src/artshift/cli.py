"""The ``artshift`` command: repaint photos with the exported ONNX generator, serve it, draw
new paintings with an exported DCGAN, or manage the model registry (promote, list, prune).

Exit codes: 0 ok, 2 bad input or params, 1 other failure; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from artshift.errors import ArtShiftError, ImageTooLarge, run_main
from artshift.generator_io import REGISTERED_NAMES, GeneratorInput, resolve_model
from artshift.images import IMAGE_SUFFIXES, SizeLimits, load_rgb, rgb_pixels, save_image
from artshift.inference import DEFAULT_TILE
from artshift.limits import DEFAULT_LIMITS, Limits
from artshift.log import progress, say
from artshift.runs import add_runs_parser

DEFAULT_MODEL = "models/generator.onnx"
FORMAT_SUFFIXES = {"png": ".png", "jpeg": ".jpg"}
PAIR_SEPARATOR = "__"  # <photo>__<style>.png: the output of a photo painted in a style (AdaIN)
# ``artshift --help``: plain text (the module doc string is reST for the API docs).
DESCRIPTION = ("Repaint photos in a learned abstract-painting style with the exported ONNX generator, "
               "serve it over HTTP, draw new paintings with an exported DCGAN, and manage the model "
               "registry. Run 'artshift COMMAND --help' for the options of a command.")
EPILOG = "Exit codes: 0 ok, 2 bad input or params, 1 other failure; errors are one line on stderr."
FORMAT_SUFFIXES = {"png": ".png", "jpeg": ".jpg"}


Skipped = list[tuple[Path, str]]  # (path, why) of inputs that could not be used


def _folder_images(folder: Path, skipped: Skipped) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted). Every path that looks like an input but
    cannot be used (an unreadable subfolder, a broken link, a link to a folder) is added to
    ``skipped``; files without an image suffix are ignored."""
    images: list[Path] = []
    unusable: Skipped = []

    def unreadable(error: OSError) -> None:
        unusable.append((Path(error.filename), f"cannot read folder ({error.strerror})"))

    for root, folders, files in os.walk(folder, onerror=unreadable):
        unusable += [(Path(root, name), "link to a folder, not followed (give it as an input to include it)")
                     for name in folders if Path(root, name).is_symlink()]
        for path in (Path(root, name) for name in files if Path(name).suffix.lower() in IMAGE_SUFFIXES):
            if path.is_file():
                images.append(path)
            else:
                unusable.append((path, f"broken link to {os.readlink(path)}" if path.is_symlink()
                                 else "not a regular file"))
    skipped += sorted(unusable)
    return sorted(images)


def collect_inputs(inputs: list[str], skipped: Skipped) -> list[tuple[Path, Path]]:
    """(input file, output path relative to --out) pairs from files, folders (recursive) and globs;
    paths inside folders that cannot be used are added to ``skipped``."""
    pairs: list[tuple[Path, Path]] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            pairs += [(p, p.relative_to(path)) for p in _folder_images(path, skipped)]
        elif path.is_file():
            pairs.append((path, Path(path.name)))
        elif glob.has_magic(name):
            matches = sorted(Path(m) for m in glob.glob(name, recursive=True) if Path(m).is_file())
            if not matches:
                raise ArtShiftError(f"{name}: the pattern matches no file")
            pairs += [(m, Path(m.name)) for m in matches]
        else:
            raise ArtShiftError(f"{path}: no such file or folder")
    return pairs


def _output_path(out_dir: Path, relative: Path, fmt: str) -> Path:
    """Where an output goes: same relative name, suffix changed only when --format asks."""
    target = out_dir / relative
    return target if fmt == "keep" else target.with_suffix(FORMAT_SUFFIXES[fmt])


def _file_key(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, so links and different spellings compare equal."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


Sources = tuple[Path, ...]  # what one output is made from: (photo,) or, for AdaIN, (photo, style)


def _describe_sources(sources: Sources) -> str:
    return " with style ".join(map(str, sources))


def plan_outputs(pairs: list[tuple[Sources, Path]], out_dir: Path, fmt: str) -> list[tuple[Sources, Path]]:
    """(sources, output) jobs, each combination of input files once. Refuses (one line) an output
    that is one of the input files, photo or style (even with --force), and two different
    sources that would write the same output."""
    inputs = {_file_key(path): path for sources, _ in pairs for path in sources}
    planned: dict[Path, Sources] = {}  # resolved output → its sources
    jobs = []
    for sources, relative in pairs:
        target = _output_path(out_dir, relative, fmt)
        overwritten = inputs.get(_file_key(target)) if target.exists() else None
        if overwritten is not None:
            raise ArtShiftError(f"{target}: the output would overwrite the input {overwritten}; choose another --out")
        other = planned.setdefault(target.resolve(), sources)
        if other == sources:
            jobs.append((sources, target))
        elif [_file_key(p) for p in other] != [_file_key(p) for p in sources]:
            raise ArtShiftError(f"{target}: both {_describe_sources(other)} and {_describe_sources(sources)} "
                                "would be written there; stylize them into separate --out folders or rename one")
    return list(dict.fromkeys(jobs))


def check_output_folders(folders: set[Path]) -> None:
    """Create each output folder and check that a file can be written in it, before any work:
    a folder that is a file, or read-only, is one line naming it (exit code 2)."""
    for folder in sorted(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(prefix=".artshift-probe-", dir=folder)
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            reason = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror or type(exc).__name__
            raise ArtShiftError(f"{folder}: cannot write to the output folder ({reason})") from None


def _save(image: Image.Image, target: Path) -> None:
    """:func:`save_image`, with a failure (a full disk) named by ``target``, not its temp file."""
    try:
        save_image(image, target)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from None


def _load_batches(jobs: list[tuple[Sources, Path]], size: int, tile_count: Callable[[int, int], int],
                  failed: Skipped) -> Iterator[list]:
    """Consecutive (target, pixels) pairs of equal image size that fit one tile, at most ``size``
    long; an image that needs tiles comes alone. Unreadable inputs go to ``failed``."""
    batch: list = []
    for (source,), target in jobs:
        try:
            pixels = rgb_pixels(load_rgb(source))
        except ArtShiftError as exc:
            say(f"skip: {exc}")  # the message starts with the path; the progress bar stays intact
            failed.append((source, "unreadable"))
            continue
        height, width, _ = pixels.shape
        joins = 0 < len(batch) < size and batch[0][1].shape == pixels.shape and tile_count(width, height) == 1
        if batch and not joins:
            yield batch
            batch = []
        batch.append((target, pixels))
    if batch:
        yield batch


@dataclass(frozen=True)
class Style:
    """A ``--style`` image, decoded once and prepared for the model (scaled down to its style side)."""

    path: Path
    name: str  # in output names: its path under the given folder, suffix dropped, "/" as "-"
    image: Image.Image


def pair_name(relative: Path, style: str) -> Path:
    """Where a photo painted in a style goes: ``<photo stem>__<style name><photo suffix>``, in the
    photo's subfolder, so each (photo, painting) pair has its own, readable output."""
    return relative.with_name(f"{relative.stem}{PAIR_SEPARATOR}{style}{relative.suffix}")


def load_styles(names: list[str], prepare: Callable[[Image.Image], Image.Image], skipped: Skipped) -> list[Style]:
    """The style images that ``--style`` names (files, folders, globs), each file once; unreadable
    ones are added to ``skipped``. None usable is a one-line error."""
    styles, seen = [], set()
    for path, relative in collect_inputs(names, skipped):
        if _file_key(path) in seen:
            continue
        seen.add(_file_key(path))
        try:
            image = load_rgb(path)
        except ArtShiftError as exc:
            skipped.append((path, f"unreadable style image ({str(exc).removeprefix(f'{path}: ')})"))
            continue
        styles.append(Style(path, "-".join(relative.with_suffix("").parts), prepare(image)))
    if not styles:
        raise ArtShiftError(f"--style: no usable style image in {', '.join(names)}")
    return styles


def _job_sources(args: argparse.Namespace, skipped: Skipped, styles: list[Style] | None) -> list[tuple[Sources, Path]]:
    """(sources, output relative to --out) of every input photo, or of every (photo, style) pair."""
    photos = collect_inputs(args.inputs, skipped)
    if styles is None:
        return [((photo,), relative) for photo, relative in photos]
    return [((photo, style.path), pair_name(relative, style.name)) for photo, relative in photos for style in styles]


def _plan(args: argparse.Namespace, skipped: Skipped,
          styles: list[Style] | None) -> tuple[list[tuple[Sources, Path]], int]:
    """The (sources, output) jobs to run and how many outputs exist already (kept without --force)."""
    jobs, existing = [], 0
    for sources, target in plan_outputs(_job_sources(args, skipped, styles), Path(args.out), args.format):
        if target.exists() and not args.force:
            print(f"skip {_describe_sources(sources)}: {target} exists (use --force to overwrite)", file=sys.stderr)
            existing += 1
        else:
            jobs.append((sources, target))
    check_output_folders({target.parent for _, target in jobs})
    return jobs, existing


def _check_style_flags(args: argparse.Namespace, takes_style: bool, model: str) -> None:
    """``--style`` and ``--alpha`` must fit the model: AdaIN needs a style, the others take none."""
    if args.alpha is not None and not 0 <= args.alpha <= 1:
        raise ArtShiftError(f"--alpha: must be in [0, 1] (0 the photo, 1 the full style), got {args.alpha:g}")
    if takes_style and not args.style:
        raise ArtShiftError(f"{model} paints photos in the style of a painting you pick (AdaIN): "
                            "give one with --style PAINTING (a file, folder or pattern)")
    if not takes_style and (args.style or args.alpha is not None):
        flag = "--style" if args.style else "--alpha"
        raise ArtShiftError(f"{flag}: {model} repaints in the one style it learned and takes no style image; "
                            f"drop {flag} (or use an AdaIN model)")


def _run_photos(stylizer, jobs: list[tuple[Sources, Path]], args: argparse.Namespace, bar, failed: Skipped) -> int:
    """Repaint each photo with a one-style :class:`Stylizer` (same-sized ones batched); returns the outputs written."""
    done = 0
    for batch in _load_batches(jobs, args.batch, stylizer.tile_count, failed):
        outputs = stylizer.run_pixels(np.stack([p for _, p in batch]) if len(batch) > 1 else batch[0][1][None])
        for (target, _), result in zip(batch, outputs):
            _save(Image.fromarray(result), target)
        done += len(batch)
        bar.update(len(batch))
    return done


def _run_pairs(model, jobs: list[tuple[Sources, Path]], styles: list[Style], alpha: float, bar,
               failed: Skipped) -> int:
    """Paint each photo (decoded once, run whole) in each of its styles with a
    :class:`StyleTransfer`; returns the outputs written. A photo too large for one pass is skipped."""
    style_images = {style.path: style.image for style in styles}
    done = 0
    for photo, group in itertools.groupby(jobs, key=lambda job: job[0][0]):
        group = list(group)
        try:
            image = load_rgb(photo)
            model.check_photo(*image.size, str(photo))
        except ArtShiftError as exc:
            say(f"skip: {exc}")  # the message starts with the path; the progress bar stays intact
            failed.append((photo, "too large" if isinstance(exc, ImageTooLarge) else "unreadable"))
            bar.update(len(group))
            continue
        for (_, style), target in group:
            _save(model.stylize(image, style_images[style], alpha), target)
            done += 1
            bar.update(1)
    return done


def stylize_command(args: argparse.Namespace) -> None:
    """Repaint every input image into ``--out``: one output per input (for an AdaIN model, per
    input and ``--style`` image), same size, same format."""
    from artshift.inference import StyleTransfer, open_photo_model

    runner = open_photo_model(args.model, threads=args.threads, tile=args.tile)
    takes_style = isinstance(runner, StyleTransfer)
    _check_style_flags(args, takes_style, runner.name)
    skipped: Skipped = []
    styles = load_styles(args.style, runner.prepare_style, skipped) if takes_style else None
    jobs, existing = _plan(args, skipped, styles)
    for path, why in skipped:
        print(f"skip: {path}: {why}", file=sys.stderr)
    print(f"running {runner.describe()} on {runner.provider}", file=sys.stderr)
    failed: Skipped = []
    with progress(total=len(jobs), desc="stylize") as bar:
        done = (_run_pairs(runner, jobs, styles, 1.0 if args.alpha is None else args.alpha, bar, failed)
                if takes_style else _run_photos(runner, jobs, args, bar, failed))
    too_large = sum(why == "too large" for _, why in failed)
    print(f"stylized {done} image(s) into {args.out}; {existing} existing, {len(failed) - too_large} unreadable, "
          + (f"{too_large} too large, " if too_large else "") + f"{len(skipped)} skipped", file=sys.stderr)
    problems = [str(path) for path, _ in skipped + failed]
    if problems:
        raise ArtShiftError(f"{len(problems)} input(s) skipped or unreadable (see the skip lines): "
                            f"{', '.join(problems[:3])}" + (" ..." if len(problems) > 3 else ""))


def sample_command(args: argparse.Namespace) -> None:
    """Draw ``--n`` new paintings from the noise of ``--seed`` into ``--out`` as PNG files."""
    from artshift.inference import Sampler

    if args.n < 1:
        raise ArtShiftError(f"--n: must be >= 1, got {args.n}")
    check_output_folders({Path(args.out)})
    sampler = Sampler(args.model, threads=args.threads)
    print(f"running {sampler.describe()} on {sampler.provider}", file=sys.stderr)
    targets = [Path(args.out) / f"sample_seed{args.seed}_{index:04d}.png" for index in range(args.n)]
    existing = [t for t in targets if t.exists()]
    if existing and not args.force:
        raise ArtShiftError(f"{existing[0]}: exists ({len(existing)} of {args.n} outputs do); use --force to overwrite")
    for image, target in zip(progress(sampler.sample(args.n, args.seed), desc="sample", total=args.n), targets):
        _save(image, target)
    print(f"drew {args.n} painting(s) into {args.out}", file=sys.stderr)


def serve_limits(args: argparse.Namespace) -> Limits:
    """The per-request limits that ``artshift serve``'s flags ask for."""
    return Limits(max_body_bytes=int(args.max_body_mb * 2**20),
                  size=SizeLimits(max_pixels=int(args.max_megapixels * 1e6), max_side=args.max_side,
                                  max_aspect=args.max_aspect),
                  max_tiles=args.max_tiles, time_budget_s=args.time_budget,
                  header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout)


def serve_command(args: argparse.Namespace) -> None:
    """Serve the model over HTTP until interrupted, in ``--workers`` processes."""
    from artshift.serve import Service, serve, worker_threads

    threads = worker_threads(args.threads, args.workers)
    model = resolve_model(args.model)
    service = Service(model.path, serve_limits(args), concurrency=args.concurrency, queue=args.queue,
                      threads=threads, tile=args.tile, model_ref=model,
                      styles=style_gallery(args.styles))
    serve(service, args.host, args.port, args.workers)


def style_gallery(folder: str | None) -> Path | None:
    """The folder of the service's style gallery: ``--styles``, else the processed test paintings
    when they exist (else no gallery: users upload their own style images)."""
    from artshift.gallery import DEFAULT_STYLES

    if folder is None:
        return DEFAULT_STYLES if DEFAULT_STYLES.is_dir() else None
    if not Path(folder).is_dir():
        raise ArtShiftError(f"--styles: {folder}: not a folder")
    return Path(folder)


def positive(convert: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: ``convert`` the text and require a value above 0 (exit 2 naming the flag)."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _add_tile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tile", type=positive(int), default=DEFAULT_TILE,
                        help="images with a side above this are processed in overlapping tiles of this size "
                             "(bounded memory); AdaIN models run a photo whole, so this is their largest photo side")


def _add_limit_arguments(serve: argparse.ArgumentParser) -> None:
    """The flags bounding what one request may cost (413 beyond them), with :data:`DEFAULT_LIMITS`."""
    limits = DEFAULT_LIMITS
    serve.add_argument("--max-body-mb", type=positive(float), default=limits.max_body_bytes / 2**20,
                       help="largest accepted upload in MiB (default %(default)g)")
    serve.add_argument("--max-megapixels", type=positive(float), default=limits.size.max_pixels / 1e6,
                       help="largest image in megapixels, checked before decoding (default %(default)g)")
    serve.add_argument("--max-side", type=positive(int), default=limits.size.max_side,
                       help="longest image side in pixels (default %(default)s)")
    serve.add_argument("--max-aspect", type=positive(float), default=limits.size.max_aspect,
                       help="largest ratio of long to short side (default %(default)g)")
    serve.add_argument("--max-tiles", type=positive(int), default=limits.max_tiles,
                       help="most model runs (tiles of --tile px) per image (default %(default)s)")
    serve.add_argument("--time-budget", type=positive(float), default=limits.time_budget_s,
                       help="seconds of stylising per image, checked before each tile (default %(default)g)")
    serve.add_argument("--header-timeout", type=positive(float), default=limits.header_timeout_s,
                       help="seconds a client has to send complete request headers (default %(default)g)")
    serve.add_argument("--body-timeout", type=positive(float), default=limits.body_timeout_s,
                       help="seconds a client has to send the whole request body (default %(default)g)")


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` that shows the default of every option taking a value, unless its help text
    already says it (``(default: keep each input's format)``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shows_default = (action.option_strings and action.nargs != 0 and not action.required
                         and action.default not in (None, argparse.SUPPRESS) and "default" not in text)
        return f"{text} (default: %(default)s)" if shows_default else text


class Parser(argparse.ArgumentParser):
    """An argument parser whose help (its subcommands' too) shows the defaults."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"formatter_class": HelpFormatter, **kwargs})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per action."""
    from artshift import __version__

    parser = Parser(prog="artshift", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = "ONNX file or MLflow URI such as models:/artshift@champion"

    stylize = commands.add_parser("stylize", help="repaint photos in the learned abstract style")
    stylize.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    stylize.add_argument("--out", required=True, help="output folder")
    stylize.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    stylize.add_argument("--format", choices=["keep", *FORMAT_SUFFIXES], default="keep",
                         help="output format (default: keep each input's format)")
    stylize.add_argument("--force", action="store_true", help="overwrite existing outputs")
    stylize.add_argument("--batch", type=positive(int), default=4, help="same-sized images run together")
    stylize.add_argument("--style", action="append", metavar="PAINTING",
                         help="AdaIN models: the painting whose style to copy; a folder, pattern or repeated "
                              "--style gives one output per photo and painting, <photo>__<painting>.<ext> "
                              "(default: none; an AdaIN model needs one)")
    stylize.add_argument("--alpha", type=float, default=None,
                         help="AdaIN models: 0 keeps the photo, 1 (the default) applies the full style")
    _add_tile_argument(stylize)
    stylize.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = all cores)")
    stylize.set_defaults(handler=stylize_command)

    sample = commands.add_parser("sample", help="draw new abstract paintings with an exported DCGAN")
    sample.add_argument("--n", type=int, default=16, help="how many paintings")
    sample.add_argument("--seed", type=int, default=0, help="noise seed: the same seed draws the same paintings")
    sample.add_argument("--out", required=True, help="output folder (sample_seed<SEED>_<i>.png)")
    sample.add_argument("--model", default=DEFAULT_MODEL,
                        help="DCGAN ONNX file or MLflow URI such as models:/artshift-dcgan/latest")
    sample.add_argument("--force", action="store_true", help="overwrite existing outputs")
    sample.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = all cores)")
    sample.set_defaults(handler=sample_command)

    serve = commands.add_parser("serve", help="HTTP service with an upload page")
    serve.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    serve.add_argument("--host", default="127.0.0.1",
                       help="bind address (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument("--workers", type=positive(int), default=1,
                       help="processes, each with its own model session, sharing the port (default 1)")
    serve.add_argument("--concurrency", type=int, default=1, help="images stylised at the same time, per worker")
    serve.add_argument("--queue", type=int, default=16, help="requests allowed to wait, per worker; more get 503")
    serve.add_argument("--threads", type=int, default=0,
                       help="CPU threads for ONNX Runtime per worker (0 = all cores / workers); "
                            "workers x threads may not exceed the cores")
    serve.add_argument("--styles", metavar="DIR", help="AdaIN models: the folder of style images the page offers "
                       "(default: data/processed/test/paintings when it exists)")
    _add_tile_argument(serve)
    _add_limit_arguments(serve)
    serve.set_defaults(handler=serve_command)
    add_runs_parser(commands)
    _add_registry_commands(commands)
    return parser


def promote_command(args: argparse.Namespace) -> None:
    """Show VERSION's evaluation beside the champion's, then move the champion alias to it
    (refused when it is worse, unless --force)."""
    from artshift import registry

    plan = registry.promotion(args.name, args.version)
    print("\n".join(plan.table()))
    reason = plan.refusal()
    if reason and not args.force:
        raise ArtShiftError(f"not promoted: {reason} (use --force to promote it anyway)")
    registry.set_champion(plan)
    print(f"version {args.version} is now models:/{args.name}@{registry.CHAMPION}"
          + (f" (forced: {reason})" if reason else ""))


def registry_list_command(args: argparse.Namespace) -> None:
    """One line per registered version, newest first."""
    from artshift import registry

    for version in registry.versions(args.name):
        print(registry.summary(version))


def registry_prune_command(args: argparse.Namespace) -> None:
    """Delete the versions that no commit, DVC experiment or alias keeps (or list them)."""
    from artshift import registry, tracking

    doomed = registry.prunable(args.name, tracking.project_root())
    for version in doomed:
        print(("would delete " if args.dry_run else "delete ") + registry.summary(version))
        if not args.dry_run:
            registry.delete(version)
    print(f"{len(doomed)} version(s) of {args.name} {'to delete' if args.dry_run else 'deleted'}", file=sys.stderr)


def _add_registry_commands(commands: argparse._SubParsersAction) -> None:
    """``artshift promote VERSION`` and ``artshift registry list|prune``, each with ``--name``."""
    promote = commands.add_parser("promote", help="make a registered version the champion (models:/artshift@champion)")
    promote.add_argument("version", help="registered version number, e.g. 3 (see: artshift registry list)")
    promote.add_argument("--force", action="store_true", help="promote even when it scores worse")
    promote.set_defaults(handler=promote_command)
    registry = commands.add_parser("registry", help="list or prune the registered model versions")
    actions = registry.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every version: aliases, method, score, DVC experiment, run")
    listing.set_defaults(handler=registry_list_command)
    prune = actions.add_parser("prune", help="delete versions that no commit, DVC experiment or alias keeps")
    prune.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    prune.set_defaults(handler=registry_prune_command)
    default = REGISTERED_NAMES[GeneratorInput.PHOTO]
    for command in (promote, listing, prune):
        command.add_argument("--name", default=default, help="registered model")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``artshift`` console script."""
    args = build_parser().parse_args(argv)
    return run_main(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
