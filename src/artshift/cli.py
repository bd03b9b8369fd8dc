"""The ``artshift`` command: repaint photos with the exported ONNX generator, serve it, draw
new paintings with an exported DCGAN, or manage the model registry (promote, list, prune).

Exit codes: 0 ok, 2 bad input or params, 1 other failure; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections.abc import Iterator
from pathlib import Path

from artshift.errors import ArtShiftError, run_main
from artshift.generator_io import MODEL_URI_SCHEMES, REGISTERED_NAMES, GeneratorInput, ModelRef
from artshift.images import IMAGE_SUFFIXES, load_rgb, save_image
from artshift.log import progress

DEFAULT_MODEL = "models/generator.onnx"
FORMAT_SUFFIXES = {"png": ".png", "jpeg": ".jpg"}


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def collect_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(input file, output path relative to --out) pairs from files, folders (recursive) and globs."""
    pairs: list[tuple[Path, Path]] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            pairs += [(p, p.relative_to(path)) for p in _folder_images(path)]
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


def _load_batches(jobs: list[tuple[Path, Path]], size: int, failed: list[Path]) -> Iterator[list]:
    """Consecutive (source, target, image) triples of equal image size, at most ``size`` long."""
    batch: list = []
    for source, target in jobs:
        try:
            image = load_rgb(source)
        except ArtShiftError as exc:
            print(f"skip: {exc}", file=sys.stderr)  # the message starts with the path
            failed.append(source)
            continue
        if batch and (len(batch) == size or batch[0][2].size != image.size):
            yield batch
            batch = []
        batch.append((source, target, image))
    if batch:
        yield batch


def stylize_command(args: argparse.Namespace) -> None:
    """Repaint every input image into ``--out``: one output per input, same size, same format."""
    from artshift.inference import Stylizer

    pairs = collect_inputs(args.inputs)
    model = resolve_model(args.model)
    stylizer = Stylizer(model.path, threads=args.threads, tile=args.tile)
    print(f"running {model.describe(stylizer.metadata)} on {stylizer.provider}", file=sys.stderr)
    jobs, existing = [], 0
    for source, relative in pairs:
        target = _output_path(Path(args.out), relative, args.format)
        if target.exists() and not args.force:
            print(f"skip {source}: {target} exists (use --force to overwrite)", file=sys.stderr)
            existing += 1
        else:
            jobs.append((source, target))
    done, failed = 0, []
    with progress(total=len(jobs), desc="stylize") as bar:
        for batch in _load_batches(jobs, args.batch, failed):
            for (_, target, _), result in zip(batch, stylizer.stylize_batch([image for _, _, image in batch])):
                save_image(result, target)
            done += len(batch)
            bar.update(len(batch))
    print(f"stylized {done} image(s) into {args.out}; {existing} existing, {len(failed)} unreadable", file=sys.stderr)
    if failed:
        raise ArtShiftError(f"{len(failed)} input(s) could not be read: {', '.join(map(str, failed[:3]))}"
                            + (" ..." if len(failed) > 3 else ""))


def resolve_model(model: str) -> ModelRef:
    """The local ONNX file for ``--model``: a path, or an MLflow URI like ``models:/artshift@champion``
    (downloaded, with its registry version and run)."""
    if model.startswith(MODEL_URI_SCHEMES):
        from artshift.registry import resolve_model as from_mlflow

        return from_mlflow(model)
    return ModelRef(Path(model), model)


def sample_command(args: argparse.Namespace) -> None:
    """Draw ``--n`` new paintings from the noise of ``--seed`` into ``--out`` as PNG files."""
    from artshift.inference import Sampler

    if args.n < 1:
        raise ArtShiftError(f"--n: must be >= 1, got {args.n}")
    model = resolve_model(args.model)
    sampler = Sampler(model.path, threads=args.threads)
    print(f"running {model.describe(sampler.metadata)} on {sampler.provider}", file=sys.stderr)
    targets = [Path(args.out) / f"sample_seed{args.seed}_{index:04d}.png" for index in range(args.n)]
    existing = [t for t in targets if t.exists()]
    if existing and not args.force:
        raise ArtShiftError(f"{existing[0]}: exists ({len(existing)} of {args.n} outputs do); use --force to overwrite")
    for image, target in zip(progress(sampler.sample(args.n, args.seed), desc="sample", total=args.n), targets):
        save_image(image, target)
    print(f"drew {args.n} painting(s) into {args.out}", file=sys.stderr)


def serve_command(args: argparse.Namespace) -> None:
    """Serve the model over HTTP until interrupted."""
    from artshift.serve import serve

    model = resolve_model(args.model)
    serve(model.path, args.host, args.port, max_body_bytes=int(args.max_body_mb * 2**20),
          concurrency=args.concurrency, queue=args.queue, threads=args.threads, model_ref=model)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per action."""
    parser = argparse.ArgumentParser(prog="artshift", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    model_help = f"ONNX file or MLflow URI such as models:/artshift@champion (default {DEFAULT_MODEL})"

    stylize = commands.add_parser("stylize", help="repaint photos in the learned abstract style")
    stylize.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    stylize.add_argument("--out", required=True, help="output folder")
    stylize.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    stylize.add_argument("--format", choices=["keep", *FORMAT_SUFFIXES], default="keep",
                         help="output format (default: keep each input's format)")
    stylize.add_argument("--force", action="store_true", help="overwrite existing outputs")
    stylize.add_argument("--batch", type=int, default=4, help="same-sized images run together (default 4)")
    stylize.add_argument("--tile", type=int, default=1024,
                         help="images larger than this are processed in overlapping tiles (bounded memory)")
    stylize.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = all cores)")
    stylize.set_defaults(handler=stylize_command)

    sample = commands.add_parser("sample", help="draw new abstract paintings with an exported DCGAN")
    sample.add_argument("--n", type=int, default=16, help="how many paintings (default 16)")
    sample.add_argument("--seed", type=int, default=0, help="noise seed: the same seed draws the same paintings")
    sample.add_argument("--out", required=True, help="output folder (sample_seed<SEED>_<i>.png)")
    sample.add_argument("--model", default=DEFAULT_MODEL,
                        help="DCGAN ONNX file or MLflow URI such as models:/artshift-dcgan/latest "
                             f"(default {DEFAULT_MODEL})")
    sample.add_argument("--force", action="store_true", help="overwrite existing outputs")
    sample.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = all cores)")
    sample.set_defaults(handler=sample_command)

    serve = commands.add_parser("serve", help="HTTP service with an upload page")
    serve.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-body-mb", type=float, default=20.0, help="largest accepted upload")
    serve.add_argument("--concurrency", type=int, default=1, help="images stylised at the same time")
    serve.add_argument("--queue", type=int, default=16, help="requests allowed to wait; more get 503")
    serve.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = all cores)")
    serve.set_defaults(handler=serve_command)
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
    promote.add_argument("version", help="registered version number, e.g. 3 (see `artshift registry list`)")
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
        command.add_argument("--name", default=default, help=f"registered model (default {default})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``artshift`` console script."""
    args = build_parser().parse_args(argv)
    return run_main(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
