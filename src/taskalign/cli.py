"""`taskalign` command line: a thin layer over functions a notebook user can call directly."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _study_parser(sub) -> None:
    from taskalign.data.real.cli import add_folder_options

    p = sub.add_parser("study", help="run (or resume) the study grid on the phantom")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "standard", "paper"])
    p.add_argument("--out", required=True, type=Path, help="study folder (created; resumed if it exists)")
    p.add_argument("--seeds", type=int, help="number of seeds (0..N-1); default from the preset")
    p.add_argument("--encoders", nargs="+", help="registered encoder names")
    p.add_argument("--tasks", nargs="+", help="registered task names")
    p.add_argument("--weights", action="append", default=[], metavar="ENCODER=FILE",
                   help="use a local pretrained file instead of in-house pretraining "
                        "(provicnet: one published file per sequence, FILE,FILE,FILE)")
    p.add_argument("--pretrain", choices=["shipped", "fresh"],
                   help="in-house start weights: the shipped foundation weights (default) or the recipe re-run")
    p.add_argument("--allow-weak-pretraining", action="store_true",
                   help="run on in-house weights that failed the foundation gate (the report says so)")
    p.add_argument("--force", action="store_true", help="reuse a folder whose config differs")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--data", type=Path, help="real folder (manifest CSV, PI-CAI or MSD) instead of the phantom")
    p.add_argument("--layout", choices=["manifest", "picai", "msd"], help="layout of --data (default: detected)")
    p.add_argument("--dwi", choices=["zero", "drop"], help="--layout msd only (no DWI): zero-fill or drop it")
    add_folder_options(p)
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: every unit in this process (default); ray: each unit a Ray task")
    p.add_argument("--address", help="Ray cluster address (host:port) for --backend ray; "
                                     "default: start a local Ray instance")


def _phantom_parser(sub) -> None:
    p = sub.add_parser("phantom", help="phantom utilities: compare against a real case, export as a real folder")
    p.add_argument("--compare-real", type=Path, metavar="CSV",
                   help="manifest CSV of a real case (e.g. ../shared/data/real/picai_sample/cases.csv)")
    p.add_argument("--out", type=Path, default=Path("runs/phantom"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=["manifest", "picai", "msd"], help="export phantom cases in this layout")
    p.add_argument("--cases", type=int, default=8, help="number of cases to export (with --layout)")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "standard", "paper"],
                   help="grid (shape, spacing) of the exported cases (with --layout)")


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.html from a finished study folder")
    p.add_argument("dir", type=Path)


def build_parser() -> argparse.ArgumentParser:
    from taskalign.advise.cli import add_advise_parser
    from taskalign.align.cli import add_mmd_parser
    from taskalign.encoders.weights.cli import add_checkpoint_parser
    from taskalign.data.real.cli import add_parsers as add_real_data_parsers
    from taskalign.pretrain.cli import add_pretrain_parser
    from taskalign.probe.cli import add_probe_parser

    parser = argparse.ArgumentParser(prog="taskalign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _study_parser(sub)
    _phantom_parser(sub)
    _report_parser(sub)
    add_mmd_parser(sub)
    add_checkpoint_parser(sub)
    add_real_data_parsers(sub)   # data check, gap
    add_pretrain_parser(sub)
    add_probe_parser(sub)
    add_advise_parser(sub)
    return parser


def study_config(args):
    """The resolved `StudyConfig` of `taskalign study` arguments (preset, grid, weights, data)."""
    import dataclasses

    from taskalign.encoders.weights import parse_weights_option
    from taskalign.study.config import preset

    try:
        weights = [parse_weights_option(item) for item in args.weights]
    except ValueError as err:
        raise SystemExit(str(err)) from None
    cfg = preset(args.preset, encoders=tuple(args.encoders) if args.encoders else None,
                 tasks=tuple(args.tasks) if args.tasks else None,
                 seeds=tuple(range(args.seeds)) if args.seeds else None)
    if weights:
        cfg = dataclasses.replace(cfg, weights=tuple(weights))
    if args.pretrain is not None or args.allow_weak_pretraining:
        cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(
            cfg.pretrain, source=args.pretrain or cfg.pretrain.source,
            allow_weak=cfg.pretrain.allow_weak or args.allow_weak_pretraining))
    if args.data is not None:
        from taskalign.data.real.cli import folder_options
        from taskalign.data.real.folder import detect_layout
        layout = args.layout or detect_layout(args.data)
        chosen = folder_options(args)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, source="real", path=str(args.data.resolve()), layout=layout, dwi=args.dwi,
            columns=tuple((chosen["columns"] or {}).items()), label_rule=chosen["label_rule"],
            series=tuple((chosen["series"] or {}).items())))
    return cfg


def run_study_command(args) -> int:
    from taskalign.pretrain.card import WeakPretraining
    from taskalign.study.backends import UnitFailed
    from taskalign.study.lock import StudyLocked
    from taskalign.study.progress import console_progress
    from taskalign.study.runner import ConfigMismatchError, run_study

    cfg = study_config(args)
    start = time.perf_counter()
    try:
        with console_progress() as progress:
            results = run_study(cfg, args.out, force=args.force, log=progress.log, progress=progress.update,
                                report=not args.no_report, backend=args.backend, address=args.address)
    except (StudyLocked, ConfigMismatchError, UnitFailed, ImportError, WeakPretraining) as err:
        raise SystemExit(f"taskalign study: {err}") from None
    print(f"results: {results}")
    if not args.no_report:
        print(f"report:  {(args.out / 'report.html').resolve()}")
    print(f"study finished in {time.perf_counter() - start:.0f} s")
    return 0


def run_phantom_command(args) -> int:
    from taskalign.data.calibration import compare_real

    if args.layout is not None:
        from taskalign.data.real.export import export_phantom_command
        return export_phantom_command(args)
    if args.compare_real is None:
        raise SystemExit("nothing to do: give --compare-real CSV, or --layout LAYOUT to export phantom cases")
    result = compare_real(str(args.compare_real), str(args.out), seed=args.seed)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "handler", None) is not None:   # subcommands that carry their own handler
        return args.handler(args)
    if args.command == "study":
        return run_study_command(args)
    if args.command == "phantom":
        return run_phantom_command(args)
    if args.command == "report":
        from taskalign.report import build_report
        print(build_report(args.dir))
        return 0
    if args.command == "mmd":
        from taskalign.align.cli import run_mmd
        return run_mmd(args)
    return args.func(args) if hasattr(args, "func") else 2


if __name__ == "__main__":
    sys.exit(main())
