"""The `zoo` command: list, describe, train, evaluate, export, sweep and tune registered models.

A training run lives in a run directory (default `runs/NAME`; see `zoo.runs`): the checkpoint
to resume from, `history.csv`, `run.json` (hyperparameters, data, final metrics), `model.keras`
and the PNG figures. `evaluate` and `export` read the trained model from there, or with
`--weights TAG_OR_PATH` from a shipped weight set or any run, `.keras`, `.weights.h5` or export
(see `zoo.weights`).

Each command turns its options into the arguments of a workflow function (`zoo.train`,
`zoo.evaluate`, `zoo.export`, `zoo.predict`, `zoo.sweep`, `zoo.tune`; see `zoo.workflow`) and
prints what it returns; their progress comes through `logging`, shown here as plain lines.

`list`, `describe`, `--help` and `--version` import no TensorFlow; the other commands import it
(and `zoo.training`, `zoo.export`, `zoo.plots`, keras-tuner) when they run, with TensorFlow's
start-up log lines hidden unless `--verbose`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import zoo
from zoo import runs, strategies, summaries, tuning, weights  # none imports TensorFlow
from zoo.data import DataError
from zoo.errors import UsageError, UserError
from zoo.predicting import group_counts
from zoo.registry import Entry, HyperparameterError, UnknownModelError
from zoo.workflow import console, using


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    """`--load KEY=VALUE`s as Python values where they read as literals, else as text;
    `zoo.train` checks the names and types (`zoo.workflow.fitting.load_options`)."""
    options = {}
    for pair in args.load:
        key, separator, text = pair.partition("=")
        if not separator:
            raise UsageError(f"--load expects KEY=VALUE, got {pair!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        options[key] = value
    return options


def cmd_list(args: argparse.Namespace) -> None:
    for name in zoo.list(args.pattern, family=args.family, pretrained=args.pretrained):
        entry = zoo.get_entry(name)
        if args.pretrained:  # one line a set: what it scores, on which split, how big
            for tag, card in weights.available(name).items():
                donor = f" ({card['entry']}'s)" if card.get("entry", name) != name else ""
                print(f"{name:24s} {tag + donor:16s} "
                      f"{weights.headline(card, entry.task.metric.name)}")
            continue
        description = entry.description.splitlines()
        print(f"{name:24s} {description[0] if description else ''}")


def cmd_describe(args: argparse.Namespace) -> None:
    described = zoo.describe(args.name)
    if args.json:
        print(json.dumps(described, indent=2))
        return
    print(f"{described['name']}: {described['description']}\n")
    print(f"task:   {described['task']}")
    print(f"data:   {described['data']}")
    metric = described["metric"]
    print(f"metric: {metric['name']} ({metric['direction']}imise) - {metric['description']}")
    print(f"fit:    {described['fit']}")
    print(f"load:   {described['load']} (the data loader's, for zoo train; --load KEY=VALUE)")
    policy = described["dtype_policy"]
    print(f"dtype:  {policy['default']} ({policy['why']})")
    print("\nhyperparameters (default, valid range, search space):")
    for name, hp in described["hyperparameters"].items():
        space = described["search_space"].get(name)
        searched = (
            "not searched"
            if space is None
            else ", ".join(f"{k}={v}" for k, v in space.items())
        )
        print(f"  {name:18s} {hp['default']!r:10} {str(hp.get('valid', 'any')):16s} "
              f"[{searched}]  {hp.get('help', '')}")
    for preset, values in described["presets"].items():
        print(f"\npreset {preset!r}: {values}")
    for card in described["weights"].values():
        print("\n" + "\n".join(weights.summary(card)))
    if not described["weights"]:
        print("\nweights: none shipped (zoo.get(NAME, weights=PATH) loads a run or file)")


def cmd_train(args: argparse.Namespace) -> None:
    entry = zoo.get_entry(args.name)
    run = zoo.train(
        entry.name, args.data, preset=args.preset, run_dir=args.run_dir, weights=args.weights,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, strategy=args.strategy,
        tensorboard=args.tensorboard, images_every=args.images_every, overwrite=args.overwrite,
        load=_load_options(args), **entry.parse_settings(args.set))
    if run.record:  # empty on a multi-worker job's non-chief worker: the chief writes the run
        print(run.summary())


def _splits(text: str) -> list[str]:
    try:
        return using.chosen_splits(text)
    except UsageError as error:  # told as argparse's, before TensorFlow starts
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_evaluate(args: argparse.Namespace) -> None:
    evaluation = zoo.evaluate(args.name, args.data, run_dir=args.run_dir, weights=args.weights,
                              splits=args.splits, out=args.out)
    print(evaluation.summary())


def cmd_export(args: argparse.Namespace) -> None:
    target = zoo.export(args.name, run_dir=args.run_dir, weights=args.weights, root=args.root,
                        format=args.format)
    print(f"exported {args.name} to {target}/: {using.export_contents(target)}")


def cmd_predict(args: argparse.Namespace) -> int:
    with console.info_on_stderr():  # progress, the HDF5 dataset read: stdout is answers
        predictions = zoo.predict(args.name, args.inputs, weights=args.weights,
                                  run_dir=args.run_dir, key=args.key, out=args.out,
                                  output=args.output)
    failed = [p for p in predictions if p.error is not None]
    # With --output, inputs that come in thousands (windows) are told as counts per class.
    counts = group_counts(predictions) if args.output else None
    for prediction in predictions:
        if prediction.error is not None:
            print(f"{prediction.input}: refused: {prediction.error}", file=sys.stderr)
        elif counts is None:
            print(f"{prediction.input}: {prediction.text}")
    if counts:
        print(f"predicted classes of {sum(counts.values())} inputs:")
        for group, count in counts.items():
            print(f"  {group}: {count} ({100 * count / sum(counts.values()):.1f}%)")
    if args.output and len(failed) < len(predictions):  # zoo.predict wrote their rows
        print(f"{len(predictions) - len(failed)} predictions in {args.output}")
    if failed:
        print(f"zoo: error: {len(failed)} of {len(predictions)} inputs refused", file=sys.stderr)
        return 1
    return 0


def _grid(entry: Entry, pairs: Sequence[str]) -> dict[str, list[Any]] | None:
    """`--grid KEY=V1,V2`s as typed values; `None` (the entry's own sweep) without any."""
    grid = {}
    for pair in pairs:
        key, _, texts = pair.partition("=")
        grid[key] = [entry.parse(key, text) for text in texts.split(",")]
    return grid or None


def cmd_sweep(args: argparse.Namespace) -> None:
    entry = zoo.get_entry(args.name)
    result = zoo.sweep(entry.name, _grid(entry, args.grid), args.data, preset=args.preset,
                       run_dir=args.run_dir, seed=args.seed, epochs=args.epochs,
                       batch_size=args.batch_size, overwrite=args.overwrite)
    print(f"sweep figure: {result.figure}")


def cmd_tune(args: argparse.Namespace) -> None:
    entry = zoo.get_entry(args.name)
    strategy = args.strategy or ("mirrored" if args.mirrored else None)
    if args.mirrored and strategy not in ("mirrored", "multi_worker"):  # zoo.tune refuses the last
        raise HyperparameterError(f"--mirrored contradicts --strategy {args.strategy}")
    result = zoo.tune(
        entry.name,
        tuner=args.tuner,
        max_trials=args.max_trials,
        directory=args.directory,
        data=args.data,
        preset=args.preset,
        fixed=entry.parse_settings(args.set),
        space=args.search,  # None: every hyperparameter the entry has a search space for
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        grid_points=args.grid_points,
        strategy=strategy,
        distributed=args.distributed,
        retrain=args.retrain,
        overwrite=args.overwrite,
        tensorboard=args.tensorboard,
        images_every=args.images_every,
        verbose=0 if args.quiet else "auto",
    )
    if result is None:
        print("worker done; the chief writes the search's results")
        return
    print(result.summary())


# The largest seed NumPy and TensorFlow take, and a bound on counts that no run reaches
# (past it TensorFlow's int64 step counters and NumPy's sizes fail with a traceback).
MAX_SEED = 2**32 - 1
MAX_COUNT = 10**9


def _integer(least: int, text: str, most: int = MAX_COUNT) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}") from None
    if not least <= value <= most:
        raise argparse.ArgumentTypeError(f"must be an integer from {least} to {most}, got {text}")
    return value


def _names(text: str) -> list[str] | None:
    """`KEY,KEY` as names; an empty option as none given."""
    return [key.strip() for key in text.split(",") if key.strip()] if text else None


def _positive_int(text: str) -> int:
    return _integer(1, text)


def _seed(text: str) -> int:
    return _integer(0, text, MAX_SEED)


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake told in one `zoo: error:` line like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"zoo: error: {message} (see {self.prog} --help)\n")


def _tensorboard_options(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument("--tensorboard", metavar="LOG_DIR",
                     help=f"log {what} to TensorBoard in LOG_DIR: per-epoch scalars and the "
                          "task's pictures (filters, features) every --images-every epochs")
    sub.add_argument("--images-every", type=_positive_int, default=summaries.DEFAULT_EVERY,
                     metavar="N", help="with --tensorboard: epochs between pictures "
                                       f"(default {summaries.DEFAULT_EVERY}; the last is always drawn)")


def _dtype_policy_option(sub: argparse.ArgumentParser) -> None:
    """`--dtype-policy P`, a short form of `--set dtype_policy=P`: the same hyperparameter."""
    sub.add_argument("--dtype-policy", dest="set", action="append", metavar="POLICY",
                     type=lambda policy: f"dtype_policy={policy}",
                     help="float32 or mixed_bfloat16 (bfloat16 compute); same as "
                          "--set dtype_policy=POLICY")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zoo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"zoo {zoo.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up log lines (hidden by default)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = commands.add_parser("list", help="registered models")
    listing.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. '*lstm*'")
    listing.add_argument("--family", help=f"only this family's ({', '.join(zoo.families())})")
    listing.add_argument("--pretrained", action="store_true",
                         help="only entries with weight sets to load (--weights TAG), one "
                              "line a set: tag, headline metric, the split it was measured "
                              "on, size")
    listing.set_defaults(run=cmd_list, tensorflow=False)

    describing = commands.add_parser("describe", help="defaults, ranges, search space, data")
    describing.add_argument("name")
    describing.add_argument("--json", action="store_true", help="machine-readable output")
    describing.set_defaults(run=cmd_describe, tensorflow=False)

    def training_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("name")
        sub.add_argument("--data", help="data file or folder (default: the embedded data)")
        sub.add_argument("--preset", help="a named preset of the entry (see zoo describe)")
        sub.add_argument("--epochs", type=_positive_int, help="override the entry's epochs")
        sub.add_argument("--batch-size", type=_positive_int, help="override the batch size")
        sub.add_argument("--seed", type=_seed, default=0)
        sub.add_argument("--run-dir", help="where the run lives (default runs/NAME)")
        sub.add_argument("--overwrite", action="store_true",
                         help="train again over a finished or different run in --run-dir")

    train = commands.add_parser("train", help="train on the entry's data; resumes if interrupted")
    training_options(train)
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a hyperparameter (repeatable)")
    train.add_argument("--load", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the data loader (repeatable; see zoo describe), e.g. "
                            "validation_fraction=0.1 to hold out subjects for validation")
    _dtype_policy_option(train)
    train.add_argument("--strategy", choices=strategies.STRATEGIES,
                       help="train under tf.distribute: one_device, mirrored (this machine's "
                            "GPUs), multi_worker (the workers TF_CONFIG names; run the same "
                            "command on each, with --run-dir on storage they all share)")
    train.add_argument("--weights", metavar="TAG_OR_PATH",
                       help="start from these weights (fine-tuning); with --set num_classes=K "
                            "the classifier head is re-initialised")
    _tensorboard_options(train, "training")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="metrics and figures of a trained run")
    evaluate.add_argument("name")
    evaluate.add_argument("--data", help="data file or folder (default: the embedded data)")
    evaluate.add_argument("--run-dir", help="the trained run (default runs/NAME)")
    evaluate.add_argument("--weights", metavar="TAG_OR_PATH",
                          help="evaluate a weight set, run, .keras, .weights.h5 or export instead")
    evaluate.add_argument("--out", help="where metrics and figures go (default RUN_DIR/evaluation, "
                                        "with --weights runs/NAME-evaluation)")
    evaluate.add_argument("--splits", default="val,test", type=_splits,
                          help="comma-separated splits to score among train, val and test "
                               "(default val,test: the held-out ones)")
    evaluate.set_defaults(run=cmd_evaluate)

    exporting = commands.add_parser("export", help="SavedModel, ONNX or LiteRT file + model card "
                                                   "of a trained run")
    exporting.add_argument("name")
    exporting.add_argument("--run-dir", help="the trained run (default runs/NAME)")
    exporting.add_argument("--root", default="saved_models", help="export root directory")
    exporting.add_argument("--weights", metavar="TAG_OR_PATH",
                           help="export a weight set (its card goes into the model card) or a "
                                "run, .keras, .weights.h5 or export instead")
    exporting.add_argument("--format", default="saved_model", metavar="FORMAT[,FORMAT...]",
                           help="saved_model (or savedmodel: every signature; default), onnx "
                                "(needs pip install 'zoo[onnx]'), litert (.tflite): the serve "
                                "signature; several, comma-separated, go into one version; a "
                                "model one format cannot express is refused, nothing written")
    exporting.set_defaults(run=cmd_export)

    predicting = commands.add_parser(
        "predict", help="predictions for input files (the family reads them); exit 1 if any fails"
    )
    predicting.add_argument("name")
    predicting.add_argument("inputs", nargs="+", metavar="INPUT",
                            help="conv nets: images or folders; recurrent: .h5/.npy windows "
                                 "(N, 150, 3); autoencoder: images cut into 16x16 patches")
    predicting.add_argument("--weights", metavar="TAG_OR_PATH",
                            help="a weight set or run, .keras, .weights.h5, export "
                                 "(default: the run in --run-dir)")
    predicting.add_argument("--run-dir", help="the trained run (default runs/NAME)")
    predicting.add_argument("--key", help="HDF5 dataset of windows (default: tstX, X or trX)")
    predicting.add_argument("--output", metavar="FILE.csv",
                            help="also write a CSV row per input (windows: then print counts per "
                                 "class, not a line each); a new file or zoo's earlier CSV")
    predicting.add_argument("--out", help="autoencoder: folder for codes and reconstructions "
                                          "(default predictions/)")
    predicting.set_defaults(run=cmd_predict)

    sweep = commands.add_parser("sweep", help="train a grid of two hyperparameters, one figure")
    training_options(sweep)
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,V3",
                       help="a swept hyperparameter (give two; default: the entry's sweep)")
    sweep.set_defaults(run=cmd_sweep)

    tune = commands.add_parser(
        "tune", help="keras-tuner search over the entry's search space; resumes if interrupted"
    )
    tune.add_argument("name")
    tune.add_argument("--tuner", default="random",
                      help=f"search algorithm: {', '.join(tuning.TUNERS)} (default random)")
    tune.add_argument("--max-trials", type=_positive_int, default=10,
                      help="trials to run at most")
    tune.add_argument("--directory", default="runs/tuning",
                      help="where searches live; this one in DIRECTORY/NAME (default runs/tuning)")
    tune.add_argument("--data", help="data file or folder (default: the embedded data)")
    tune.add_argument("--preset", help="a named preset of the entry, under the searched values")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="hold a hyperparameter at a value instead of searching it (repeatable)")
    _dtype_policy_option(tune)
    tune.add_argument("--epochs", type=_positive_int,
                      help="epochs per trial (hyperband: the most); default the entry's")
    tune.add_argument("--batch-size", type=_positive_int, help="override the batch size")
    tune.add_argument("--search", metavar="KEY,KEY", type=_names,
                      help="search only these hyperparameters (default: every one the entry "
                           "has a search space for, less those --set holds)")
    tune.add_argument("--seed", type=_seed, default=0,
                      help="seeds the tuner, the data and every trial's training")
    tune.add_argument("--grid-points", type=lambda text: _integer(2, text), default=3,
                      help="grid tuner: values per numeric range (default 3)")
    tune.add_argument("--mirrored", action="store_true",
                      help="train each trial with tf.distribute.MirroredStrategy on this "
                           "machine's devices")
    tune.add_argument("--strategy", choices=strategies.STRATEGIES,
                      help="train each trial under this tf.distribute strategy (see zoo train); "
                           "combines with --distributed; not multi_worker")
    tune.add_argument("--distributed", action="store_true",
                      help="join a distributed search as KERASTUNER_TUNER_ID, "
                           "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT say")
    tune.add_argument("--retrain", action="store_true",
                      help="retrain the best configuration for the entry's full epochs")
    tune.add_argument("--overwrite", action="store_true",
                      help="delete an earlier search in DIRECTORY/NAME and start afresh")
    _tensorboard_options(tune, "each trial (LOG_DIR/trial_NN, with keras-tuner's HParams)")
    tune.add_argument("--quiet", action="store_true",
                      help="no progress lines while a trial trains (its one-line result stays)")
    tune.set_defaults(run=cmd_tune)
    return parser


# A user's mistake, told in one line; anything else is a bug and keeps its traceback.
# `UserError` covers those raised where TensorFlow is imported (training.NonFiniteLossError,
# tuning.TuningError, summaries.TensorBoardMissing): naming them here would import it.
USER_ERRORS = (UnknownModelError, HyperparameterError, DataError, FileNotFoundError,
               runs.RunError, weights.WeightsError, UserError)
USAGE_ERRORS = (UnknownModelError, HyperparameterError, UsageError)  # exit 2, as argparse's


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a mistake argparse has told
        return int(exit_.code or 0)
    interrupts = console.Interrupts()  # SIGTERM stops the work as Ctrl-C does
    try:
        with console.console_logging(), interrupts:
            if getattr(args, "tensorflow", True):  # every command but list and describe
                console.start_tensorflow(args.verbose)
            code = args.run(args)
    except KeyboardInterrupt as interrupt:  # one line, where the run was left; no traceback
        if args.debug:
            raise
        print(interrupts.message(interrupt), file=sys.stderr)
        return interrupts.exit_status
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"zoo: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, USAGE_ERRORS) else 1
    except BrokenPipeError:
        # The reader of stdout left (`zoo list | head`): stop quietly, as `ls | head` does.
        # Python flushes stdout again at exit, so point it at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # permission denied, disk full, not a directory, ...
        if args.debug:
            raise
        where = f": {error.filename}" if error.filename else ""
        print(f"zoo: error: {error.strerror or error}{where} (see --debug for where it happened)",
              file=sys.stderr)
        return 1
    return code or 0
