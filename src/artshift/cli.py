"""The ``artshift`` command: repaint photos with the exported ONNX generator.

Exit codes: 0 ok, 2 bad input or params, 1 other failure; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from artshift.errors import ArtShiftError, run_main
from artshift.images import IMAGE_SUFFIXES, load_rgb, save_image
from artshift.log import progress

DEFAULT_MODEL = "models/generator.onnx"


def collect_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(input file, output path relative to --out) pairs; folders are walked recursively."""
    pairs: list[tuple[Path, Path]] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            pairs += [(p, p.relative_to(path)) for p in files]
        elif path.is_file():
            pairs.append((path, Path(path.name)))
        else:
            raise ArtShiftError(f"{path}: no such file or folder")
    return pairs


def stylize_command(args: argparse.Namespace) -> None:
    """Repaint every input image into ``--out``, one output per input, same size and format."""
    from artshift.inference import Stylizer

    pairs = collect_inputs(args.inputs)
    stylizer = Stylizer(args.model, threads=args.threads)
    print(f"running {args.model} on {stylizer.provider}", file=sys.stderr)
    done, failed, existing = 0, [], 0
    for source, relative in progress(pairs, desc="stylize"):
        target = Path(args.out) / relative
        if target.exists() and not args.force:
            print(f"skip {source}: {target} exists (use --force to overwrite)", file=sys.stderr)
            existing += 1
            continue
        try:
            image = load_rgb(source)
        except ArtShiftError as exc:
            print(f"skip: {exc}", file=sys.stderr)  # the message starts with the path
            failed.append(source)
            continue
        save_image(stylizer.stylize(image), target)
        done += 1
    print(f"stylized {done} image(s) into {args.out}; {existing} existing, {len(failed)} unreadable", file=sys.stderr)
    if failed:
        raise ArtShiftError(f"{len(failed)} input(s) could not be read: {', '.join(map(str, failed[:3]))}"
                            + (" ..." if len(failed) > 3 else ""))


def serve_command(args: argparse.Namespace) -> None:
    """Serve the model over HTTP until interrupted."""
    from artshift.serve import serve

    serve(args.model, args.host, args.port, max_body_bytes=int(args.max_body_mb * 2**20),
          concurrency=args.concurrency, queue=args.queue, threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per action."""
    parser = argparse.ArgumentParser(prog="artshift", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stylize = commands.add_parser("stylize", help="repaint photos in the learned abstract style")
    stylize.add_argument("inputs", nargs="+", help="image files or folders")
    stylize.add_argument("--out", required=True, help="output folder")
    stylize.add_argument("--model", default=DEFAULT_MODEL, help=f"ONNX generator (default {DEFAULT_MODEL})")
    stylize.add_argument("--force", action="store_true", help="overwrite existing outputs")
    stylize.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = all cores)")
    stylize.set_defaults(handler=stylize_command)

    serve = commands.add_parser("serve", help="HTTP service with an upload page")
    serve.add_argument("--model", default=DEFAULT_MODEL, help=f"ONNX generator (default {DEFAULT_MODEL})")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-body-mb", type=float, default=20.0, help="largest accepted upload")
    serve.add_argument("--concurrency", type=int, default=1, help="images stylised at the same time")
    serve.add_argument("--queue", type=int, default=16, help="requests allowed to wait; more get 503")
    serve.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = all cores)")
    serve.set_defaults(handler=serve_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``artshift`` console script."""
    args = build_parser().parse_args(argv)
    return run_main(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
