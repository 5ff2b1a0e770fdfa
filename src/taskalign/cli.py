"""`taskalign` command line: a thin layer over functions a notebook user can call directly.

Every subcommand sets its handler with `set_defaults(func=...)`; `main` runs it on the one error
path: a user's mistake (`taskalign.errors.UserError`, a bad argument, a missing or unwritable
file) prints `taskalign: error: …` on stderr and exits 2; anything else is a bug and keeps its
traceback. `--debug` (or TASKALIGN_DEBUG=1) shows the traceback of every error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from taskalign.cli_args import OneLineParser, nonnegative_int, output_folder, positive_int, size_list
from taskalign.errors import InputError, is_user_error, one_line

DEBUG_ENV = "TASKALIGN_DEBUG"


def _study_parser(sub) -> None:
    from taskalign.data.real.cli import add_folder_options
    from taskalign.data.real.folder import LAYOUTS
    from taskalign.data.real.msd import DWI_OPTIONS
    from taskalign.study.backends import BACKENDS
    from taskalign.study.config import PRESETS

    p = sub.add_parser("study", help="run (or resume) the study grid on the phantom")
    p.add_argument("--preset", default="quick", choices=list(PRESETS))
    p.add_argument("--out", required=True, type=output_folder, help="study folder (created; resumed if it exists)")
    p.add_argument("--seeds", type=positive_int, help="number of seeds (0..N-1), >= 1; default from the preset")
    p.add_argument("--train-cases", type=size_list, metavar="N[,N...]",
                   help="labelled training cases per regime, e.g. 8,16,48 (nested subsets of the training pool; "
                        "a larger pool is made when needed); default from the preset")
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
    p.add_argument("--layout", choices=LAYOUTS, help="layout of --data (default: detected)")
    p.add_argument("--dwi", choices=DWI_OPTIONS, help="--layout msd only (no DWI): zero-fill or drop it")
    add_folder_options(p)
    p.add_argument("--backend", default="local", choices=BACKENDS,
                   help="local: this machine, in worker processes (default); ray: each unit a Ray task")
    p.add_argument("--workers", type=positive_int,
                   help="--backend local: worker processes (default: one per train.threads CPU cores, "
                        "one on a GPU; 1 runs every unit in this process)")
    p.add_argument("--address", help="Ray cluster address (host:port) for --backend ray; "
                                     "default: start a local Ray instance")
    p.set_defaults(func=run_study_command)


def _phantom_parser(sub) -> None:
    from taskalign.data.real.folder import LAYOUTS
    from taskalign.study.config import PRESETS

    p = sub.add_parser("phantom", help="phantom utilities: compare against a real case, export as a real folder")
    p.add_argument("--compare-real", type=Path, metavar="CSV",
                   help="manifest CSV of a real case (e.g. ../shared/data/real/picai_sample/cases.csv)")
    p.add_argument("--out", type=output_folder, default=Path("runs/phantom"), help="output folder")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--layout", choices=LAYOUTS, help="export phantom cases in this layout")
    p.add_argument("--cases", type=positive_int, default=8, help="number of cases to export (with --layout)")
    p.add_argument("--preset", default="quick", choices=list(PRESETS),
                   help="grid (shape, spacing) of the exported cases (with --layout)")
    p.set_defaults(func=run_phantom_command)


def _sweep_parser(sub) -> None:
    from taskalign.study.config import PRESETS
    from taskalign.study.lr_sweep import SWEPT_TASKS

    p = sub.add_parser("sweep-lr", help="choose the fine-tuning and scratch learning rates on validation cases")
    p.add_argument("--preset", default="quick", choices=list(PRESETS))
    p.add_argument("--out", required=True, type=output_folder, help="sweep folder (created; resumed if it exists)")
    p.add_argument("--encoders", nargs="+", help="registered encoder names (default: the preset's)")
    p.add_argument("--tasks", nargs="+", default=list(SWEPT_TASKS), help="tasks the rates are ranked on")
    p.set_defaults(func=run_sweep_command)


def run_sweep_command(args) -> int:
    from taskalign.study.config import preset
    from taskalign.study.lr_sweep import run_sweep
    from taskalign.study.runner import check_names

    cfg = preset(args.preset, encoders=tuple(args.encoders) if args.encoders else None, tasks=tuple(args.tasks))
    check_names(cfg)
    result = run_sweep(cfg, args.out, tasks=tuple(args.tasks))
    print((args.out / "sweep.md").read_text())
    for c in result["chosen"]:
        print(f"{c['family']} {c['start']}: encoder lr {c['encoder_lr']:g} (head {result['head_lr']:g})")
    return 0


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.html from a finished study folder")
    p.add_argument("dir", type=Path)
    p.add_argument("--markdown", action="store_true",
                   help="print the results and claims as Markdown tables instead (report.html untouched)")
    p.set_defaults(func=run_report_command)


def build_parser() -> argparse.ArgumentParser:
    from taskalign.advise.cli import add_advise_parser
    from taskalign.experiments.transfer_matrix.cli import add_experiment_parser
    from taskalign.align.cli import add_mmd_parser
    from taskalign.data.real.cli import add_parsers as add_real_data_parsers
    from taskalign.pretrain.cli import add_pretrain_parser
    from taskalign.probe.cli import add_probe_parser
    from taskalign.encoders.weights.cli import add_checkpoint_parser

    parser = OneLineParser(prog="taskalign", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of every error (also: {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    _study_parser(sub)
    _phantom_parser(sub)
    _report_parser(sub)
    _sweep_parser(sub)
    add_mmd_parser(sub)
    add_checkpoint_parser(sub)
    add_real_data_parsers(sub)   # data check, gap
    add_pretrain_parser(sub)
    add_probe_parser(sub)
    add_advise_parser(sub)
    add_experiment_parser(sub)
    return parser


def study_config(args):
    """The resolved `StudyConfig` of `taskalign study` arguments (preset, grid, weights, data)."""
    import dataclasses

    from taskalign.encoders.weights import parse_weights_option
    from taskalign.encoders.weights.loading import refuse_unrecognised_files
    from taskalign.study.config import preset
    from taskalign.study.runner import check_names

    weights = [parse_weights_option(item) for item in args.weights]
    for _, spec in weights:
        refuse_unrecognised_files(spec)
    cfg = preset(args.preset, encoders=tuple(args.encoders) if args.encoders else None,
                 tasks=tuple(args.tasks) if args.tasks else None,
                 seeds=tuple(range(args.seeds)) if args.seeds is not None else None)
    if weights:
        cfg = dataclasses.replace(cfg, weights=tuple(weights))
    if args.train_cases is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, train_cases=args.train_cases, n_train=max(cfg.data.n_train, max(args.train_cases))))
    if args.pretrain is not None or args.allow_weak_pretraining:
        cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(
            cfg.pretrain, source=args.pretrain or cfg.pretrain.source,
            allow_weak=cfg.pretrain.allow_weak or args.allow_weak_pretraining))
    if args.data is not None:
        from taskalign.data.real.cli import folder_options
        from taskalign.data.real.folder import detect_layout
        if not args.data.exists():
            raise InputError(f"--data {args.data} does not exist; give a manifest CSV, a PI-CAI or an MSD folder")
        layout = args.layout or detect_layout(args.data)
        chosen = folder_options(args)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, source="real", path=str(args.data.resolve()), layout=layout, dwi=args.dwi,
            columns=tuple((chosen["columns"] or {}).items()), label_rule=chosen["label_rule"],
            series=tuple((chosen["series"] or {}).items())))
    elif args.layout or args.dwi:
        raise InputError("--layout and --dwi describe a real folder; give it with --data PATH")
    check_names(cfg)
    return cfg


def study_workers(args, cfg) -> int:
    """--workers, or the local backend's default for this machine (Ray: 1, it places units itself)."""
    from taskalign.study.backends import default_workers

    if args.workers is not None:
        return args.workers
    return default_workers(cfg) if args.backend == "local" else 1


def run_study_command(args) -> int:
    from taskalign.study.progress import console_progress
    from taskalign.study.runner import run_study

    cfg = study_config(args)
    start = time.perf_counter()
    with console_progress() as progress:
        results = run_study(cfg, args.out, force=args.force, log=progress.log, progress=progress.update,
                            report=not args.no_report, backend=args.backend, address=args.address,
                            workers=study_workers(args, cfg))
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
        raise InputError("nothing to do: give --compare-real CSV, or --layout LAYOUT to export phantom cases")
    result = compare_real(str(args.compare_real), str(args.out), seed=args.seed)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def run_report_command(args) -> int:
    if args.markdown:
        from taskalign.report.load import load_study
        from taskalign.report.markdown import markdown_summary

        print(markdown_summary(load_study(args.dir)), end="")
        return 0
    from taskalign.report import build_report

    print(build_report(args.dir))
    return 0


def _debugging(argv: list[str] | None) -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0") or "--debug" in (sys.argv[1:] if argv is None else argv)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns its exit status (2 for a user's mistake, 1 for a bug)."""
    debug = _debugging(argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("taskalign: interrupted; run the same command again to resume (finished work is kept)",
              file=sys.stderr)
        return 130
    except Exception as err:   # noqa: BLE001 - the one place that sorts user errors from bugs
        if debug:
            raise
        if is_user_error(err):
            print(one_line(err), file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"taskalign: internal error (a bug, not your input): {type(err).__name__}: {err}\n"
              f"  please report it with the traceback above and the command you ran", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
