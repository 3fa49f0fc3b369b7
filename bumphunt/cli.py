"""The ``bumphunt`` command line: one sub-command per stage and ``run`` for the whole chain.

A thin layer over the Python API: parse, load and validate the configuration, lock the
folder the command writes to (``bumphunt.pipeline.lock_folder``: the analysis' output_dir, or
-o/--output), call the stage, print a summary. Errors the user can fix, click's usage errors
among them, end the command with a one-line message and exit code 2, and so does a full disk
(``bumphunt._io.write_error``); warnings of the stages (``logging``) are printed as ``warning: ...``.
The stages are imported inside the commands, so that ``bumphunt --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
from pathlib import Path

import click

from ._version import __version__
from .errors import BumphuntError, ConfigError

#: The stages of ``bumphunt run``, in order (bumphunt.pipeline.CHAIN, which imports more).
_CHAIN = ("simulation", "kinfit", "select", "shapes", "scan", "exclusion", "report")


class _InContext:
    """Gives click's usage errors raised without a context (``--output`` without its value) the
    command's context, so that the message points to the command's ``--help``."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            if error.ctx is None:
                error.ctx = ctx
            raise


class _Command(_InContext, click.Command):
    pass


class _SubGroup(_InContext, click.Group):
    command_class = _Command


class _Group(_InContext, click.Group):
    command_class = _Command
    group_class = _SubGroup

    def make_context(self, info_name, args, parent=None, **extra):
        with _usage_errors_on_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx):
        _show_warnings()
        try:
            with _usage_errors_on_one_line():
                return super().invoke(ctx)
        except BumphuntError as error:
            click.echo(f"bumphunt: {error}", err=True)
            sys.exit(2)
        except OSError as error:
            failure = _full_disk(error, ctx)
            if failure is None:
                raise
            click.echo(f"bumphunt: {failure}", err=True)
            sys.exit(2)


#: Errors only a write raises: a full disk, an exceeded quota, a read-only disk.
_WRITE_ONLY_ERRORS = (errno.ENOSPC, getattr(errno, "EDQUOT", 122), errno.EROFS)
#: ``ctx.meta`` key of the folder the command writes to.
_FOLDER = "bumphunt.folder"


def _full_disk(error: OSError, ctx: click.Context) -> BumphuntError | None:
    """A full disk met by a write that did not go through bumphunt._io (a library's own
    writer), as the one line of ``bumphunt._io.write_error``: naming the file when the error
    does, else the folder the command writes to. None for any other OSError."""
    from ._io import write_error

    if error.errno not in _WRITE_ONLY_ERRORS:
        return None
    path = error.filename
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    path = path if isinstance(path, str) and path else ctx.meta.get(_FOLDER)
    return write_error(path, error) if path else None


@contextlib.contextmanager
def _holding(folder):
    """Hold ``folder``, which the command writes to, while it runs: a second bumphunt command
    writing there stops at once (``bumphunt.pipeline.lock_folder``)."""
    from .pipeline import lock_folder

    ctx = click.get_current_context()
    with lock_folder(folder, f"bumphunt {ctx.info_name}") as locked:
        ctx.meta[_FOLDER] = locked
        yield locked


class _UsageLine(click.UsageError):
    """A click usage error shown as one line, ``bumphunt: ...``, like every other error."""

    def show(self, file=None):
        click.echo(f"bumphunt: {self.message}", file=file, err=True)


# click >= 8.2: no arguments print the help (kept as it is); unknown commands have their class
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
_NO_SUCH_COMMAND = getattr(click.exceptions, "NoSuchCommand", ())


@contextlib.contextmanager
def _usage_errors_on_one_line():
    try:
        yield
    except click.UsageError as error:
        if isinstance(error, _UsageLine) or isinstance(error, _NO_ARGS_IS_HELP):
            raise
        raise _UsageLine(_usage_message(error), error.ctx) from None


def _usage_message(error: click.UsageError) -> str:
    """What is wrong on the command line, and where to look: ``no such option: --bogus
    (try 'bumphunt scan --help')``; a misspelling gets ``(did you mean --output?)`` instead."""
    option = getattr(error, "option_name", None)
    if isinstance(error, click.NoSuchOption):
        what = f"no such option: {option}"
    elif isinstance(error, _NO_SUCH_COMMAND):
        what = f"no such command: {error.command_name}"
    elif isinstance(error, click.MissingParameter) and error.param is not None:
        what = f"missing {error.param.param_type_name}: {_param_name(error.param)}"
    elif isinstance(error, click.BadParameter) and error.param is not None:
        what = f"invalid value for {_param_name(error.param)}: {_clause(error.message)}"
    else:
        what = _clause(error.format_message())
        if option:
            what = what.replace(repr(option), option)
        extra = re.fullmatch(r"got unexpected extra (argument|arguments) \((.*)\)", what)
        if extra:
            what = f"unexpected {extra[1]}: {extra[2]}"
        command = re.fullmatch(r"no such command '(.*)'", what)  # click < 8.2
        if command:
            what = f"no such command: {command[1]}"
    possibilities = sorted(getattr(error, "possibilities", None) or ())
    if possibilities:
        return f"{what} (did you mean {' or '.join(possibilities)}?)"
    path = error.ctx.command_path if error.ctx is not None else "bumphunt"
    return f"{what} (try '{path} --help')"


def _param_name(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return "/".join(param.opts)
    return param.human_readable_name


def _clause(text: str) -> str:
    """A sentence of click's as a clause of ours: no final period, lower-case first word."""
    text = " ".join(text.split()).rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


class _WarningHandler(logging.Handler):
    """Prints the package's log warnings as one line each on stderr."""

    def emit(self, record):
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("bumphunt")
    if not any(isinstance(h, _WarningHandler) for h in logger.handlers):
        handler = _WarningHandler(level=logging.WARNING)
        logger.addHandler(handler)
        logger.setLevel(min(logger.level or logging.WARNING, logging.WARNING))


def _parse_overrides(settings: tuple[str, ...]) -> dict:
    import yaml

    from .config import load_yaml

    overrides = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE (e.g. simulation.signal.events_per_mass=1000), got {setting!r}")
        try:
            overrides[key.strip()] = load_yaml(value)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or " ".join(str(error).split())
            raise ConfigError(f"--set {key.strip()}: {value!r} is not a YAML value ({problem})") from None
    return overrides


def _load(config_path, settings, analysis: str | None = None) -> dict:
    """The configuration: the file (or the default), the bundled ``analysis`` (or the one of
    ``--analysis``) set over it, then ``--set``."""
    from .config import bundled_analysis, load_config

    context = click.get_current_context(silent=True)
    chosen = context.meta.get(_ANALYSIS) if context is not None else None
    if analysis and chosen and chosen != analysis:
        raise ConfigError(f"choose one bundled analysis: --analysis {chosen} or --{analysis}")
    return load_config(config_path, {**bundled_analysis(analysis or chosen), **_parse_overrides(settings)})


#: Where ``--analysis`` leaves its value for :func:`_load` (click's context metadata).
_ANALYSIS = "bumphunt.analysis"


def _remember_analysis(context, parameter, value):
    if value is not None:
        context.meta[_ANALYSIS] = value


def config_option(command):
    """``-c/--config FILE`` and ``--analysis NAME`` (a bundled analysis set over it)."""
    from .config import BUNDLED_ANALYSES

    command = click.option(
        "--analysis",
        type=click.Choice(list(BUNDLED_ANALYSES)),
        expose_value=False,
        callback=_remember_analysis,
        help="A bundled analysis set over the configuration: "
        + "; ".join(f"{name}: {what}" for name, what in BUNDLED_ANALYSES.items())
        + ". --set wins.",
    )(command)
    file_help = "Analysis YAML (default: the bundled one)."
    return click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help=file_help)(command)


set_option = click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override a configuration value (repeatable)."
)
workers_option = click.option("--workers", type=click.IntRange(min=0), help="Worker processes (0 = one per core).")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def scheduler_option(work: str):
    """``--scheduler ADDRESS``: the Dask cluster whose workers run ``work`` (docs/cluster.md)."""
    return click.option(
        "--scheduler",
        metavar="ADDRESS",
        help=f"Dask scheduler (tcp://host:8786) whose workers run {work}; default: dask.scheduler of the "
        "configuration, else this machine. The results are the same.",
    )


def output_option(help_text: str, **kwargs):
    """``-o/--output``, the same name in every command."""
    return click.option("-o", "--output", "output", help=help_text, **kwargs)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bumphunt")
def main():
    """bumphunt: a dark-sector bump hunt, from three-photon events to a coupling exclusion.

    \b
    Examples:
      bumphunt run                              # whole chain, bundled default analysis
      bumphunt config show > my.yaml            # start your own analysis
      bumphunt simulate -c my.yaml --set simulation.signal.events_per_mass=2000
    """


@main.command()
@config_option
@set_option
@click.option("--sample", "samples", multiple=True, help="Simulate only this sample (repeatable).")
@output_option("Output directory of the ntuples.", type=click.Path(file_okay=False))
@workers_option
@scheduler_option("the chunks of events")
@quiet_option
def simulate(config_path, settings, samples, output, workers, scheduler, quiet):
    """Simulate signal and background events and write ROOT ntuples.

    \b
    Examples:
      bumphunt simulate                                 # every sample -> <output_dir>/simulation/
      bumphunt simulate -c my.yaml --set simulation.signal.events_per_mass=2000
      bumphunt simulate --sample alp --sample ggg -o my_ntuples/
      bumphunt simulate --scheduler tcp://host:8786     # chunks on a Dask cluster, the same ntuples
    """
    config = _load(config_path, settings)
    with _holding(output or config["output_dir"]):
        _run_simulation(config, samples=samples or None, output=output, workers=workers, scheduler=scheduler,
                        quiet=quiet)  # fmt: skip


def _run_simulation(config, *, samples=None, output=None, workers=None, scheduler=None, quiet=False):
    from .simulation import run_simulation

    summaries = run_simulation(config, samples=samples, output_dir=output, workers=workers, scheduler=scheduler,
                               progress=not quiet)  # fmt: skip
    for summary in summaries:
        click.echo(
            f"{summary.sample:<15} {summary.n_generated:>10,d} generated  {summary.n_selected:>10,d} pre-selected  "
            f"{summary.expected_events:>12.4g} expected events  {summary.seconds:6.1f} s  -> {summary.path}"
        )
    return summaries


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False))
@config_option
@set_option
@output_option("Output .root file (one input) or directory.", type=click.Path())
@click.option("--threads", type=click.IntRange(min=1), help="Threads of the fit (default: all cores).")
@scheduler_option("the fit, a file each (on a filesystem shared with this machine)")
@quiet_option
def kinfit(inputs, config_path, settings, output, threads, scheduler, quiet):
    """Kinematic fit of the photons to the beam four-momentum; adds the fit branches.

    INPUTS are ntuples (default: every simulated sample of the analysis).

    \b
    Examples:
      bumphunt kinfit                                   # all samples -> <output_dir>/kinfit/
      bumphunt kinfit my_data.root --output my_data_fit.root
      bumphunt kinfit --scheduler tcp://host:8786       # a file per Dask worker (shared filesystem)
    """
    config = _load(config_path, settings)
    one_file = output is not None and Path(output).suffix == ".root"  # a file of the user's choosing: no lock
    with contextlib.nullcontext() if one_file else _holding(output or config["output_dir"]):
        _run_kinfit(config, inputs=list(inputs) or None, output=output, threads=threads, scheduler=scheduler,
                    quiet=quiet)  # fmt: skip


def _run_kinfit(config, *, inputs=None, output=None, threads=None, scheduler=None, quiet=False):
    import numba

    from .kinfit import run_kinfit

    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    summaries = run_kinfit(config, inputs, output, scheduler=scheduler, progress=not quiet)
    for summary in summaries:
        counts = summary.status_counts
        failed = summary.n_events - counts["converged"]
        click.echo(
            f"{summary.input_path.name:<20} {summary.n_events:>10,d} events  {counts['converged']:>10,d} converged  "
            f"{failed:>6,d} flagged  {summary.seconds:6.1f} s  -> {summary.output_path}"
        )
    return summaries


@main.command()
@config_option
@set_option
@output_option("Output directory (friend ntuples, network, table and plots).", type=click.Path(file_okay=False))
@click.option("--model", "model_path", type=click.Path(file_okay=False, exists=True),
              help="Apply this saved Punzi-net folder instead of training one.")  # fmt: skip
@scheduler_option("the scoring of the events (the network is trained here)")
@quiet_option
def select(config_path, settings, output, model_path, scheduler, quiet):
    """Train the Punzi-net (or apply a saved one) and select the events of every sample.

    \b
    Reads every ntuple of <output_dir>/kinfit. Writes, below <output_dir>/select: a friend
    ntuple per sample (punzi_score, punzi_selected: what shapes.selection cuts on), the
    network (punzinet/), fom.csv/fom.json (sigma_min per mass for the Punzi-net cut and the
    baselines, on test events) and fom.png, training.png, scores.png.

    \b
    Examples:
      bumphunt select                                   # train, choose the working point, score
      bumphunt select --set select.working_point=0.6
      bumphunt select --model other/select/punzinet     # apply a trained network
      bumphunt select --scheduler tcp://host:8786       # score the events on a Dask cluster
    """
    config = _load(config_path, settings)
    with _holding(output or config["output_dir"]):
        _run_select(config, output=output, model_path=model_path, scheduler=scheduler, quiet=quiet)


def _run_select(config, *, output=None, model_path=None, scheduler=None, quiet=False):
    from .select.stage import run_select

    summary = run_select(config, output, model_path=model_path, scheduler=scheduler, progress=not quiet)
    ratio = summary.mean_sigma_min("sigma_min_punzi", held_out=False) / summary.mean_sigma_min(
        "sigma_min_preselection", held_out=False
    )
    click.echo(
        f"select: working point {summary.working_point:.3f}, mean sigma_min over training masses "
        f"{summary.mean_sigma_min('sigma_min_punzi', held_out=False):.3g} pb ({ratio:.2f} x the pre-selection's), "
        f"held-out masses {summary.mean_sigma_min('sigma_min_punzi', held_out=True):.3g} pb  "
        f"{summary.seconds:.1f} s -> {summary.model_path.parent}"
    )
    return summary


@main.command()
@click.argument("input_path", required=False, type=click.Path(dir_okay=False))
@config_option
@set_option
@output_option("Output directory (JSON and plots).", type=click.Path(file_okay=False))
@quiet_option
def shapes(input_path, config_path, settings, output, quiet):
    """Fit the signal shape at every generated mass and interpolate it in mass.

    \b
    INPUT_PATH is the ALP ntuple after the kinematic fit (default <output_dir>/kinfit/alp.root).
    Writes signal_shapes.json (loaded by the scan), shape_parameters.png and shape_fits.pdf.

    \b
    Examples:
      bumphunt shapes                                   # -> <output_dir>/shapes/
      bumphunt shapes my_alp_fit.root -o my_shapes/ --set shapes.plots=false
    """
    config = _load(config_path, settings)
    with _holding(output or config["output_dir"]):
        _run_shapes(config, input_path=input_path, output=output, quiet=quiet)


def _run_shapes(config, *, input_path=None, output=None, quiet=False):
    from .shapes import run_shapes

    summary = run_shapes(config, input_path, output, progress=not quiet)
    model = summary.model
    n_ok = sum(fit.ok for fit in model.fits)
    checks = model.validation["summary"]
    click.echo(
        f"signal shapes: {n_ok}/{len(model.fits)} masses fitted, {len(model.held_out)} held out; held-out checks: "
        f"mu within 2 sigma {checks['mu_within_2_errors']:.0%}, width within 2 sigma "
        f"{checks['width_within_2_errors']:.0%}, chi2 p > 0.01 {checks['gof_pvalue_above_0.01']:.0%}  "
        f"{summary.seconds:.1f} s -> {summary.path}"
    )
    return summary


@main.command()
@config_option
@set_option
@output_option("Output directory.", type=click.Path(file_okay=False))
@workers_option
@scheduler_option("the mass points and the look-elsewhere toys")
@click.option("--no-resume", is_flag=True, help="Recompute every mass point, even those of an interrupted scan.")
@quiet_option
def scan(config_path, settings, output, workers, scheduler, no_resume, quiet):
    """Scan the diphoton mass: signal + background fit, CLs limits and significance per mass.

    \b
    Writes results.csv and results.json (one row per mass hypothesis), upper_limits.png
    (Brazil band) and local_significance.png. An interrupted scan resumes where it stopped.

    \b
    Examples:
      bumphunt scan                                     # -> <output_dir>/scan/
      bumphunt scan -c my.yaml --set scan.start=0.5 --set scan.stop=4.0 -o my_scan/
      bumphunt scan --scheduler tcp://host:8786         # mass points on a Dask cluster
    """
    config = _load(config_path, settings)
    with _holding(output or config["output_dir"]):
        _run_scan(config, output=output, workers=workers, scheduler=scheduler, resume=not no_resume, quiet=quiet)


def _run_scan(config, *, output=None, workers=None, scheduler=None, resume=True, quiet=False):
    import numpy as np

    from ._parallel import dask_scheduler
    from .scan import run_scan

    scheduler = dask_scheduler(config, scheduler)
    summary = run_scan(
        config, output_dir=output, workers=workers, scheduler=scheduler, resume=resume, progress=not quiet
    )
    result = summary.result
    flagged = int((~result.ok).sum())
    click.echo(
        f"scan: {len(result)} mass points ({result.resumed_points} resumed, {flagged} flagged), "
        f"{_largest_excess(result)}  {summary.seconds:.1f} s -> {summary.table_csv}"
    )
    if result.dropped_candidates:
        click.echo(f"scan: {result.dropped_candidates} data candidates with a NaN or infinite mass left out")
    if summary.impacts is not None and summary.impacts.rows:
        total = summary.impacts.relative_impact(None)
        click.echo(
            f"scan: systematics ({', '.join(summary.impacts.sources)}) raise the median expected limit by "
            f"{100 * np.nanmedian(total):.1f} % (median of {len(total)} masses) "
            f"-> {summary.table_csv.parent / 'impacts.csv'}"
        )
    return summary


@main.command()
@config_option
@set_option
@output_option("Output directory (tables and plots).", type=click.Path(file_okay=False))
@quiet_option
def count(config_path, settings, output, quiet):
    """Count events in a signal window at every generated ALP mass: on/off limits with toys.

    \b
    The window holds count.signal_fraction (90%) of the truth-matched signal; the background
    in it is the weighted simulation, constrained by its statistical uncertainty (and
    count.background_uncertainty or count.tau). Limits are CLs (or CLs+b, count.limit) from
    pseudo-experiments (or asymptotic formulas, count.method); expected limits are quantiles
    over pseudo-data bootstrapped from the background simulation. Writes results.csv and
    results.json (the scan's columns), windows.csv, upper_limits.png (Brazil band) and
    local_significance.png.

    \b
    Examples:
      bumphunt count                                    # -> <output_dir>/count/
      bumphunt count --set count.method=asymptotic --set count.confidence_level=0.9
      bumphunt count --set count.data=my_data_fit.root -o my_count/
    """
    config = _load(config_path, settings)
    with _holding(output or config["output_dir"]):
        _run_count(config, output=output, quiet=quiet)


def _run_count(config, *, output=None, quiet=False):
    from .count import run_count

    summary = run_count(config, output, progress=not quiet)
    result = summary.result
    click.echo(
        f"count: {len(result)} masses ({int((~result.ok).sum())} flagged), {_largest_excess(result)}  "
        f"{summary.seconds:.1f} s -> {summary.table_csv}"
    )
    return summary


def _largest_excess(result) -> str:
    """The largest local excess of a scan's or a count's result, and its global significance."""
    best = result.global_significance
    return f"largest excess Z_local = {best.z_local_max:.2f} at {best.mass:.4f} GeV, Z_global = {best.z_global:.2f}"


@main.command()
@config_option
@set_option
@output_option("Output directory (tables and plots).", type=click.Path(file_okay=False))
@click.option(
    "--scan-table",
    "scan_table",
    type=click.Path(dir_okay=False),
    help="The scan's results.json (default: the analysis' scan folder).",
)
@quiet_option
def exclusion(config_path, settings, output, scan_table, quiet):
    """Convert the scan's limits into cross-section and g_agg limits, self-consistent with the ALP lifetime.

    \b
    For every mass and every limit (observed, expected +-1/2 sigma) solves
    N_UL = L sigma(m, g) eps(m, c tau(m, g)): the efficiency is the signal model's, reweighted
    from the simulated ALP lifetime to that of each coupling. Writes exclusion.csv and
    exclusion.json (g limits, cross-section limits, efficiency and c tau at the limit, every
    excluded interval, status), cross_section_limits.png, coupling_exclusion.png (with the
    published Belle II 2020 curve) and efficiency_map.png.

    \b
    Examples:
      bumphunt exclusion                                # -> <output_dir>/exclusion/
      bumphunt exclusion --scan-table my_scan/results.json -o my_exclusion/
    """
    config = _load(config_path, settings)
    with _holding(output or config["output_dir"]):
        _run_exclusion(config, output=output, scan_table=scan_table, quiet=quiet)


def _run_exclusion(config, *, output=None, scan_table=None, quiet=False):
    import numpy as np

    from .exclusion import run_exclusion

    summary = run_exclusion(config, output, scan_table=scan_table, progress=not quiet)
    result = summary.result
    finite = np.isfinite(result["g_obs"])
    islands = int(np.char.startswith(result["status"], "island").sum())
    best = float(np.nanmin(result["g_obs"])) if finite.any() else float("nan")
    click.echo(
        f"exclusion: {int(finite.sum())}/{len(result)} masses with a coupling limit ({islands} islands), "
        f"strongest g_agg < {best:.3g} GeV^-1  {summary.seconds:.1f} s -> {summary.table_csv}"
    )
    return summary


@main.command()
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@config_option
@set_option
@click.option("--quick", is_flag=True, help="A reduced analysis for smoke tests (bumphunt/data/quick.yaml).")
@click.option(
    "--force",
    metavar="[STAGE]",
    is_flag=False,
    flag_value="all",
    default=None,
    type=click.Choice(["all", *_CHAIN]),
    help="Redo STAGE (and so every later one) even when up to date; alone: every stage.",
)
@click.option("--unblind", is_flag=True, help="Fit and show the data sample (sets unblind: true).")
@workers_option
@scheduler_option("simulate, kinfit, select scoring and the scan")
@quiet_option
def run(config_file, config_path, settings, quick, force, unblind, workers, scheduler, quiet):
    """Run the whole analysis: simulate, kinfit, select, shapes, scan, exclusion and the report.

    \b
    CONFIG_FILE is the analysis YAML (default: the bundled analysis; -c works too). A stage
    whose settings, code and inputs did not change since its last run is skipped: its
    fingerprint is recorded in <stage folder>/fingerprint.json. The report is
    <output_dir>/report/report.html.

    \b
    Examples:
      bumphunt run                                      # bundled default analysis -> bumphunt_output/
      bumphunt run my.yaml --workers 2
      bumphunt run --quick                              # the chain on a small analysis, ~1 minute
      bumphunt run --force scan                         # redo the scan (every mass point), the exclusion and the report
      bumphunt run my_ntuples.yaml --unblind            # your own samples, the data fitted
      bumphunt run my.yaml --scheduler tcp://host:8786  # the heavy stages on a Dask cluster (docs/cluster.md)

    \b
    With a `samples` section (your own ntuples) the simulation is skipped and the chain runs
    on them; the data sample is fitted only with `unblind: true` or --unblind.
    """
    if config_file and config_path:
        raise ConfigError(f"give the configuration once: {config_file} or -c {config_path}")
    config = _load_run_config(config_file or config_path, settings + (("unblind=true",) if unblind else ()), quick)
    with _holding(config["output_dir"]):
        _run_chain(config, force=force, workers=workers, scheduler=scheduler, quiet=quiet)


def _load_run_config(config_path, settings, quick: bool) -> dict:
    """The configuration of a run: ``--quick`` (``--analysis quick``) sets its reduced analysis
    first, ``--set`` wins."""
    return _load(config_path, settings, "quick" if quick else None)


def _run_chain(config, *, force=None, workers=None, scheduler=None, quiet=False, until=None) -> list[dict]:
    """Run every stage of the chain (up to ``until``) that is not up to date; returns what each
    did. The heavy stages run on the Dask cluster at ``scheduler`` (or the configuration's
    ``dask.scheduler``)."""
    import time

    from . import pipeline
    from ._progress import shared_progress
    from .layout import OutputLayout

    layout = OutputLayout.from_config(config)
    forced = set(_CHAIN[_CHAIN.index(force) :]) if force not in (None, "all") else set(_CHAIN) if force else set()
    runners = {
        "simulation": lambda: _run_simulation(config, workers=workers, scheduler=scheduler, quiet=quiet),
        "kinfit": lambda: _run_kinfit(config, scheduler=scheduler, quiet=quiet),
        "select": lambda: _run_select(config, scheduler=scheduler, quiet=quiet),
        "shapes": lambda: _run_shapes(config, quiet=quiet),
        "scan": lambda: _run_scan(
            config, workers=workers, scheduler=scheduler, resume="scan" not in forced, quiet=quiet
        ),
        "exclusion": lambda: _run_exclusion(config, quiet=quiet),
        "report": lambda: _run_report(config, stages=done),
    }
    done = []  # what each stage did, for the report
    click.echo(f"analysis '{config['name']}' -> {config['output_dir']}")
    with shared_progress(not quiet) as display:
        chain = pipeline.CHAIN[: _CHAIN.index(until) + 1] if until else pipeline.CHAIN
        advance = display.add("analysis", total=len(chain))
        for stage in chain:
            if stage.name == "simulation" and config.get("samples"):
                click.echo("simulation: not needed (the analysis reads its own samples)")
                done.append({"stage": stage.name, "status": "own samples", "seconds": 0.0})
                advance(1)
                continue
            fingerprint, reason = pipeline.check(stage, config, layout)
            if stage.name in forced:
                reason = "forced"
            if reason is None:
                pipeline.refresh(stage, layout)  # a copied folder: its records take the copies' times
                click.echo(f"{stage.name}: up to date, skipped")
                done.append({"stage": stage.name, "status": "skipped", "seconds": 0.0})
            else:
                click.echo(f"{stage.name}: runs ({reason})")
                start = time.perf_counter()
                runners[stage.name]()
                seconds = time.perf_counter() - start
                pipeline.record(stage, fingerprint, layout, seconds)
                done.append({"stage": stage.name, "status": "ran", "seconds": seconds})
            advance(1)
    ran = [f"{entry['stage']} {entry['seconds']:.0f} s" for entry in done if entry["status"] == "ran"]
    what = layout.report_dir / "report.html" if until is None else layout.stage_dir(until)
    click.echo(f"run: {', '.join(ran) if ran else 'every stage up to date'} -> {what}")
    return done


#: The luminosities of ``bumphunt study luminosity`` (fb^-1): the 2018 set of the Belle II 2020
#: search, ..., Run 1, 1 ab^-1.
STUDY_LUMINOSITIES = (0.445, 36.0, 100.0, 362.0, 1000.0)


@main.group()
def study():
    """Studies that run the chain several times, each below <output_dir>/studies/.

    \b
    Examples:
      bumphunt study luminosity --analysis run1         # the expected limit at 0.445 ... 1000 fb^-1
    """


@study.command("luminosity")
@config_option
@set_option
@click.option("--luminosity", "luminosities", type=click.FloatRange(min=0, min_open=True), multiple=True,
              help="Integrated luminosity, fb^-1 (repeatable; default 0.445 36 100 362 1000).")  # fmt: skip
@click.option("--mass", "masses", type=click.FloatRange(min=0, min_open=True), multiple=True,
              help="Mass of the table, GeV (repeatable; default 0.5 1 2 4 6 8 9.5).")  # fmt: skip
@workers_option
@scheduler_option("the heavy stages")
@quiet_option
def study_luminosity(config_path, settings, luminosities, masses, workers, scheduler, quiet):
    """The median expected g_agg limit versus the integrated luminosity, at several masses.

    \b
    Simulates and fits the analysis once (in <output_dir>), then runs the chain from the
    selection on at every luminosity in <output_dir>/studies/luminosity/<L>fb/ (the selection
    tuned at each: its working point depends on the background), and writes
    luminosity_study.csv/.json and luminosity_study.png there.

    \b
    Examples:
      bumphunt study luminosity                         # 0.445, 36, 100, 362 and 1000 fb^-1
      bumphunt study luminosity --analysis run1 --luminosity 362 --luminosity 1000 --mass 1 --mass 6
    """
    config = _load(config_path, settings)
    with _holding(config["output_dir"]):
        _run_luminosity_study(config, luminosities or STUDY_LUMINOSITIES, masses or None, workers=workers,
                              scheduler=scheduler, quiet=quiet)  # fmt: skip


def _run_luminosity_study(config, luminosities, masses, *, workers=None, scheduler=None, quiet=False):
    """Run the chain at each luminosity (fb^-1) on one simulation; the table and the figure."""
    from .exclusion import LUMINOSITY_MASSES, luminosity_table, plot_luminosity_study
    from .layout import OutputLayout
    from .plotting import save_figure

    _run_chain(config, workers=workers, scheduler=scheduler, quiet=quiet, until="kinfit")
    layout = OutputLayout.from_config(config)
    folder = layout.study_dir("luminosity")
    results = {}
    for luminosity in sorted(set(luminosities)):
        analysis = {**config, "luminosity": luminosity * 1000.0, "output_dir": str(folder / f"{luminosity:g}fb")}
        shared = OutputLayout.from_config(analysis)
        for stage in ("simulation", "kinfit"):  # the same events: weights follow the luminosity where read
            linked = shared.stage_dir(stage)
            if not linked.exists() and layout.stage_dir(stage).is_dir():
                linked.parent.mkdir(parents=True, exist_ok=True)
                linked.symlink_to(layout.stage_dir(stage).resolve(), target_is_directory=True)
        click.echo(f"luminosity study: {luminosity:g} fb^-1")
        _run_chain(analysis, workers=workers, scheduler=scheduler, quiet=quiet)
        results[luminosity] = shared.exclusion_table_json
    study = luminosity_table(results, masses or LUMINOSITY_MASSES)
    table_csv, _ = study.write(folder)
    save_figure(plot_luminosity_study(study), folder / "luminosity_study.png")
    for row in study.rows():
        click.echo(
            f"{row['mass']:6.3g} GeV  {row['luminosity_fb_inv']:8.4g} fb^-1  g_exp {row['g_exp']:.3g} GeV^-1  "
            f"ratio {row['ratio_to_first']:.3f} (L^-1/4: {row['ratio_l_quarter']:.3f})  {row['status']}"
        )
    click.echo(f"luminosity study -> {table_csv} and {folder / 'luminosity_study.png'}")
    return study


@main.command()
@config_option
@set_option
@click.option("--quick", is_flag=True, help="The settings of `bumphunt run --quick`.")
def report(config_path, settings, quick):
    """Write the report of an analysis' results: report/report.html in its output folder.

    \b
    One self-contained page (figures embedded): the settings, the background composition,
    the selection, the resolution curve, the largest excess, the Brazil plot, the g_agg
    exclusion with the published curve, the systematics impact, the software versions and
    every figure of the results folder. `bumphunt run` writes it as its last stage; this
    command writes it again, e.g. after running a stage on its own.

    \b
    Examples:
      bumphunt report                                   # -> bumphunt_output/report/report.html
      bumphunt report -c my.yaml
      bumphunt report --quick                           # after bumphunt run --quick
    """
    config = _load_run_config(config_path, settings, quick)
    with _holding(config["output_dir"]):
        _run_report(config)


def _run_report(config, *, stages=None):
    from .report import write_report

    path = write_report(config, stages=stages)
    click.echo(f"report -> {path}")
    return path


@main.group()
def config():
    """Show or check an analysis configuration.

    \b
    Examples:
      bumphunt config show > my.yaml                    # the default analysis, commented
      bumphunt config check my.yaml
    """


@config.command("show")
@config_option
@set_option
def config_show(config_path, settings):
    """Print a configuration (the bundled default, with its comments, when none is given).

    \b
    Examples:
      bumphunt config show > my.yaml                    # start your own analysis
      bumphunt config show -c my.yaml --set seed=7      # as the stages will read it
      bumphunt config show --analysis run1              # the bundled Run-1 analysis
    """
    from .config import default_config_text

    if config_path is None and not settings and _ANALYSIS not in click.get_current_context().meta:
        click.echo(default_config_text(), nl=False)
        return
    import yaml

    click.echo(yaml.safe_dump(_load(config_path, settings), sort_keys=False), nl=False)


@config.command("check")
@click.argument("config_path", type=click.Path(dir_okay=False))
def config_check(config_path):
    """Validate a configuration file; exit code 2 and the offending key when it is wrong.

    Its samples' files must exist: each sample is listed with its files.

    \b
    Example:
      bumphunt config check my.yaml
    """
    from .samples import analysis_samples

    config = _load(config_path, ())
    if config.get("samples"):
        for sample in analysis_samples(config).values():
            files = f"{len(sample.paths()):>4} file(s), tree '{sample.tree}', {sample.format}"
            click.echo(f"{sample.name:<20} {sample.role:<10} {files}")
    click.echo(f"{config_path}: valid")


if __name__ == "__main__":  # pragma: no cover
    main()
