"""The ``artshift`` command: repaint photos with the exported ONNX generator, serve it, draw
new paintings with an exported DCGAN, or manage the model registry (promote, list, prune).

Exit codes: 0 ok, 2 bad input or params, 1 other failure; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from artshift.errors import ArtShiftError, run_main
from artshift.generator_io import REGISTERED_NAMES, GeneratorInput, resolve_model
from artshift.images import IMAGE_SUFFIXES, SizeLimits, load_rgb, rgb_pixels, save_image
from artshift.limits import DEFAULT_LIMITS, Limits
from artshift.log import progress, say
from artshift.runs import add_runs_parser

DEFAULT_MODEL = "models/generator.onnx"
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


def plan_outputs(pairs: list[tuple[Path, Path]], out_dir: Path, fmt: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs, each input once. Refuses (one line) an output that is one of the
    inputs (even with --force) and two inputs that would write the same output."""
    inputs = {_file_key(source): source for source, _ in pairs}
    planned: dict[Path, Path] = {}  # resolved output → its input
    jobs = []
    for source, relative in pairs:
        target = _output_path(out_dir, relative, fmt)
        overwritten = inputs.get(_file_key(target)) if target.exists() else None
        if overwritten is not None:
            raise ArtShiftError(f"{target}: the output would overwrite the input {overwritten}; choose another --out")
        other = planned.setdefault(target.resolve(), source)
        if other == source:
            jobs.append((source, target))
        elif _file_key(other) != _file_key(source):
            raise ArtShiftError(f"{target}: both {other} and {source} would be written there; "
                                "stylize them into separate --out folders or rename one")
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


def _load_batches(jobs: list[tuple[Path, Path]], size: int, tile_count: Callable[[int, int], int],
                  failed: Skipped) -> Iterator[list]:
    """Consecutive (target, pixels) pairs of equal image size that fit one tile, at most ``size``
    long; an image that needs tiles comes alone. Unreadable inputs go to ``failed``."""
    batch: list = []
    for source, target in jobs:
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


def _plan(args: argparse.Namespace, skipped: Skipped) -> tuple[list[tuple[Path, Path]], int]:
    """The (input, output) jobs to run and how many outputs exist already (kept without --force)."""
    jobs, existing = [], 0
    for source, target in plan_outputs(collect_inputs(args.inputs, skipped), Path(args.out), args.format):
        if target.exists() and not args.force:
            print(f"skip {source}: {target} exists (use --force to overwrite)", file=sys.stderr)
            existing += 1
        else:
            jobs.append((source, target))
    check_output_folders({target.parent for _, target in jobs})
    return jobs, existing


def stylize_command(args: argparse.Namespace) -> None:
    """Repaint every input image into ``--out``: one output per input, same size, same format."""
    from artshift.inference import Stylizer

    skipped: Skipped = []
    jobs, existing = _plan(args, skipped)
    for path, why in skipped:
        print(f"skip: {path}: {why}", file=sys.stderr)
    stylizer = Stylizer(args.model, threads=args.threads, tile=args.tile)
    print(f"running {stylizer.describe()} on {stylizer.provider}", file=sys.stderr)
    done, failed = 0, []
    with progress(total=len(jobs), desc="stylize") as bar:
        for batch in _load_batches(jobs, args.batch, stylizer.tile_count, failed):
            outputs = stylizer.run_pixels(np.stack([p for _, p in batch]) if len(batch) > 1 else batch[0][1][None])
            for (target, _), result in zip(batch, outputs):
                _save(Image.fromarray(result), target)
            done += len(batch)
            bar.update(len(batch))
    print(f"stylized {done} image(s) into {args.out}; {existing} existing, {len(failed)} unreadable, "
          f"{len(skipped)} skipped", file=sys.stderr)
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
                      threads=threads, tile=args.tile, model_ref=model)
    serve(service, args.host, args.port, args.workers)


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
    parser.add_argument("--tile", type=positive(int), default=1024,
                        help="images with a side above this are processed in overlapping tiles of this size "
                             "(bounded memory)")


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
