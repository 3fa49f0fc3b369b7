"""The bad-input table: every wrong input a user can make that bumphunt answers for.

Each case names the input, what bumphunt does, and the exact message (a ``str.format``
template: ``{path}`` and the like are filled in by the test). The test that provokes a case
checks its message with :func:`message`; tests/test_bad_inputs.py checks that every case is
provoked by some test and that docs/bad-input.md shows this table
(``python docs/render_tables.py`` renders it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BadInput:
    input: str  # what the user gave
    response: str  # what bumphunt does
    message: str  # the exact message, a str.format template


BAD_INPUTS: dict[str, BadInput] = {}


def case(key: str, input: str, response: str, message: str) -> None:
    """Add a case to the table (in the order the table shows)."""
    if key in BAD_INPUTS:
        raise ValueError(f"bad-input case {key!r} defined twice")
    BAD_INPUTS[key] = BadInput(input, response, message)


def message(key: str, **fields) -> str:
    """The exact message of case ``key`` with its fields filled in."""
    return BAD_INPUTS[key].message.format(**fields)


def pattern(key: str, **fields) -> str:
    """:func:`message` as a regular expression matching the whole message (for pytest.raises)."""
    return f"^{re.escape(message(key, **fields))}$"


def table_markdown() -> str:
    """The table for docs/bad-input.md."""
    lines = ["| input | what bumphunt does | message |", "| --- | --- | --- |"]
    for entry in BAD_INPUTS.values():
        shown = entry.message.replace("|", "\\|")
        lines.append(f"| {entry.input} | {entry.response} | `{shown}` |")
    return "\n".join(lines)


# -- statistics --------------------------------------------------------------------------
case(
    "pseudo-data-heavy-weights",
    "event-by-event pseudo-data (scan.pseudo_data: events) from a background sample whose events weigh more than 0.1",
    "scans, and warns that such pseudo-data fake peaks (the default smooth pseudo-data do not)",
    "background sample {sample} has event weights up to {weight} (> 0.1): pseudo-data repeat each event about that "
    "often and fake peaks; use scan.pseudo_data=smooth",
)
case(
    "pseudo-data-small-sample",
    "smooth pseudo-data from a background sample whose events weigh more than 1",
    "scans (no fake peaks: tests/test_scan.py), and warns that the shape rests on few simulated events",
    "background sample {sample} has event weights up to {weight} (> 1): its shape rests on fewer simulated than "
    "expected events; simulate more",
)
case(
    "selection-not-run",
    "shapes or scan cutting on the Punzi-net's decision (punzi_selected) before `bumphunt select` ran",
    "refuses before any fit, saying what to run or cut on instead",
    "{path} does not exist, and the cut needs {branches} from it: run `bumphunt select` first, or cut on the "
    "pre-selection alone (select.preselection)",
)
case(
    "selection-stale-friend",
    "a selection friend ntuple made from another version of its kinematic-fit ntuple (kinfit rerun)",
    "refuses to read it",
    "{friend} was made from another version of {path}: rerun the stage that wrote it",
)
case(
    "selection-unknown-network-key",
    "a misspelt key of select.network",
    "refuses the configuration before any work, naming the key and the closest one",
    "config error: unknown key 'select.network.{name}' (did you mean '{close}'?)",
)
case(
    "scan-shapes-other-beams",
    "signal shapes fitted at another sqrt(s) than the analysis' beams",
    "refuses before any fit",
    "{path}: signal shapes fitted at sqrt(s) = {fitted} GeV, the analysis has {sqrt_s} GeV; fit them again "
    "(bumphunt shapes) or set scan.shapes to matching ones",
)
case(
    "scan-shapes-other-selection",
    "shapes.selection or shapes.mass_variable changed after the signal shapes were fitted",
    "scans with the selection and mass variable of the signal shapes, and warns",
    "the scan selects {selection!r} on {variable} as the signal shapes in {path} were fitted, not as "
    "shapes.selection and shapes.mass_variable say ({config_selection!r} on {config_variable})",
)
case(
    "scan-outside-shapes",
    "mass hypotheses outside the masses the signal shapes were fitted on",
    "flags them in fit_status, with NaN numbers and no efficiency",
    "outside the signal model's mass range ({low}-{high} GeV)",
)
case(
    "scan-toys-without-background",
    "own data (scan.data: a file) with look-elsewhere toys but no background simulation",
    "refuses before any fit, saying how to do without toys",
    "{toys} look-elsewhere toys need the background simulation in {kinfit} ({reason}); simulate it, or set "
    "scan.global_toys=0 to count the upcrossings on the scan itself",
)
case(
    "scan-nan-candidates",
    "data candidates with a NaN or infinite mass",
    "leaves them out, logs how many, and records the number (results.json: dropped_candidates)",
    "{path}: {n} candidates with a NaN or infinite {variable} dropped",
)
case(
    "scan-spectrum-beyond-sqrt-s",
    "scan_spectrum with a range reaching sqrt(s) of the signal shapes",
    "refuses before any fit",
    "the scan range must end below sqrt(s) = {sqrt_s} GeV, got stop = {stop}",
)
case(
    "scan-spectrum-mev",
    "candidate masses in MeV, every one above sqrt(s) of the signal shapes (`scan_spectrum`, or `scan.data`)",
    "refuses before any fit (it scanned to 329 empty windows before)",
    "masses look like MeV (median {median}): convert to GeV; every candidate lies above {ceiling}",
)
case(
    "scan-spectrum-mev-likely",
    "candidate masses of which more than half lie above sqrt(s) (MeV with a few small values)",
    "scans, and warns",
    "masses may be in MeV (median {median}; {percent} % of the candidates above {ceiling}): convert them to GeV",
)
case(
    "scan-spectrum-wide-bins",
    "a `hist.Hist` for `scan_spectrum` with bins in the scan range wider than a third of the signal resolution "
    "(0.2 GeV bins)",
    "scans, and warns with the bin width, the resolution there and the width to use",
    "histogram bins of {width} GeV at {mass} GeV are wider than a third of the signal resolution there ({sigma} "
    "GeV): the fits smear the peak or fail; use bins narrower than {limit} GeV",
)
case(
    "scan-spectrum-2d",
    "a two-dimensional array for `scan_spectrum` (the (events, 3) masses of `read_ntuple`)",
    "refuses: never flattens it silently (a table or TTree with `mass=` takes several candidates per entry)",
    "the scan data are an array of shape {shape}: give the candidate masses as a one-dimensional array (ravel() it "
    "if every entry is a candidate), or a table with mass= naming the column",
)
case(
    "scan-spectrum-not-numbers",
    "`scan_spectrum` data that are not numbers (`['a', 'b']`)",
    "refuses",
    "the scan data are a {type} of {kind}, not candidate masses: give masses in GeV (an array of numbers), a ROOT "
    "file or TTree with mass=, or a hist.Hist",
)
case(
    "scan-spectrum-no-tree",
    "`scan_spectrum` of a ROOT file without the tree `events`, and no `tree=`",
    "refuses, listing the file's trees",
    "{path}: no tree 'events' (found: {found}); name the tree with tree=",
)
case(
    "scan-spectrum-no-branch",
    "`scan_spectrum` with `mass=` (or, without it, the signal model's mass variable) naming a branch the tree lacks",
    "refuses, naming the closest branch (or the first ones)",
    "{where} has no branch {name!r} (named by mass={mass!r}); {hint}",
)
case(
    "scan-spectrum-bad-expression",
    "a `mass=` expression with an operation that is not allowed (`m.sum()`, `__import__('os')`)",
    "refuses; nothing of it is evaluated",
    "mass={mass!r}: {part!r} is not allowed (numbers, branches, + - * / **, abs, sqrt and indexing with integers "
    "and slices are)",
)

case(
    "counting-bad-number",
    "a negative, NaN or infinite count, background or uncertainty given to a counting model "
    "(`bumphunt.stats.counting.CountingModel`)",
    "refuses it",
    "counting model: {name} must be a number {bound}, got {value}",
)
case(
    "count-empty-window",
    "a generated mass none of whose signal events passes the selection, so no signal window can be placed",
    "counts at the other masses and flags it in fit_status, with NaN numbers",
    "no selected signal event",
)
case(
    "count-no-signal",
    "a selection that leaves no signal event at any generated mass of the count",
    "refuses before counting, naming the selection",
    "{path}: no selected signal event at any generated mass between {start} and {stop} GeV (check "
    "shapes.selection: {selection!r})",
)
case(
    "count-window-without-background",
    "signal windows that hold no event of the background simulation",
    "takes their background as 0 and known (limits of a background-free count, conservative), and warns",
    "{n} signal windows hold no simulated background event (the first at {mass} GeV): their background is taken "
    "as 0, known, which makes their limits those of a background-free count",
)
case(
    "count-missing-ntuple",
    "`bumphunt count` before the kinematic fit wrote the ALP ntuple",
    "refuses before any work, saying what to run",
    "{path}: no such file; the count needs the ALP ntuple after the kinematic fit (run `bumphunt simulate` and "
    "`bumphunt kinfit`)",
)

# -- configuration and command line -----------------------------------------------------
case(
    "config-non-finite",
    "NaN or infinity for a number anywhere in the configuration (`luminosity: .nan`, `--set luminosity=.inf`)",
    "refuses the configuration before any work, naming the key",
    "config error at '{setting}': {value} is not a finite number",
)
case(
    "config-scan-range",
    "`scan.start` not below `scan.stop`",
    "refuses the configuration before any work",
    "config error at 'scan.start': {start} GeV is not below scan.stop = {stop} GeV",
)
case(
    "config-scan-beyond-sqrt-s",
    "`scan.stop` at or above sqrt(s) of the beams",
    "refuses the configuration before any work",
    "config error at 'scan.stop': {stop} GeV is not below sqrt(s) = {sqrt_s} GeV",
)
case(
    "config-no-signal-events",
    "`simulation.signal.events_per_mass: 0`",
    "refuses the configuration before any work",
    "config error at 'simulation.signal.events_per_mass': no signal events, so no signal shapes to fit "
    "and no limits to set (simulate some, e.g. 2000 per mass)",
)
case(
    "config-unknown-key",
    "a misspelt key of a section (`--set count.metod=toys`, `count: {{metod: toys}}` in the file)",
    "refuses the configuration before any work, naming the key and the closest one",
    "config error: unknown key '{setting}'{where} (did you mean '{close}'?)",
)
case(
    "cli-set-not-yaml",
    "`--set KEY=VALUE` whose value is not YAML (`--set seed=[1`)",
    "exit code 2 before any work",
    "--set {setting}: '{value}' is not a YAML value ({problem})",
)
case(
    "cli-unknown-option",
    "an option the command does not have (`bumphunt scan --bogus`)",
    "exit code 2, points to the command's help",
    "no such option: {option} (try '{command} --help')",
)
case(
    "cli-misspelt",
    "a misspelt option or command (`bumphunt scan --ouput x`, `bumphunt sacn`)",
    "exit code 2, names the close match",
    "no such {kind}: {name} (did you mean {suggestion}?)",
)
case(
    "cli-unknown-command",
    "a command that does not exist (`bumphunt plot`, `bumphunt config edit`)",
    "exit code 2, points to the help",
    "no such command: {name} (try '{command} --help')",
)
case(
    "cli-missing-argument",
    "a required argument left out (`bumphunt config check`)",
    "exit code 2, points to the command's help",
    "missing argument: {argument} (try '{command} --help')",
)
case(
    "cli-missing-value",
    "an option without its value (`bumphunt scan --output`)",
    "exit code 2, points to the command's help",
    "option {option} requires an argument (try '{command} --help')",
)
case(
    "cli-bad-value",
    "an option value of the wrong kind (`bumphunt scan --workers -1`, `--threads x`)",
    "exit code 2, points to the command's help",
    "invalid value for {option}: {reason} (try '{command} --help')",
)
case(
    "cli-extra-argument",
    "an argument the command does not take (`bumphunt scan my.yaml` for `bumphunt scan -c my.yaml`)",
    "exit code 2, points to the command's help",
    "unexpected argument: {argument} (try '{command} --help')",
)

# -- files ----------------------------------------------------------------------------------
case(
    "output-not-writable",
    "an output folder that cannot be written (a file in its path, no permission, a read-only disk)",
    "refuses before any work, in every stage",
    "{folder}: cannot write output there ({reason})",
)
case(
    "shapes-missing-key",
    "a `signal_shapes.json` lacking a key (a setting, a parameter's spline, a spline's knots)",
    "refuses to load it (the scan, `load_shapes`), naming the key by its JSON path",
    "{path}: broken signal-shape file: missing key '{entry}'",
)
case(
    "shapes-wrong-type",
    'a `signal_shapes.json` entry of the wrong type (`"n_l": "10"`, `"parameters": []`)',
    "refuses to load it, naming the entry",
    "{path}: broken signal-shape file: '{entry}' should be {expected}, not {found}",
)
case(
    "shapes-empty-spline",
    "a spline with no coefficients (or no knots) in `signal_shapes.json`",
    "refuses to load it, naming the spline",
    "{path}: broken signal-shape file: '{entry}' is empty",
)
case(
    "shapes-spline-inconsistent",
    "a spline whose knots do not match its coefficients and degree",
    "refuses to load it (scipy would silently drop coefficients)",
    "{path}: broken signal-shape file: '{entry}' has {knots} knots for {coefficients} coefficients of degree "
    "{degree} (needs {needed})",
)
case(
    "shapes-out-of-range",
    "a zero or negative width, window or sqrt(s), or a tail power n <= 1 in the settings of `signal_shapes.json`",
    "refuses to load it, naming the setting",
    "{path}: broken signal-shape file: '{entry}' is {value}, must be above {limit}",
)
case(
    "shapes-width-not-positive",
    "a width or tail spline not on the log scale, so it could be zero or negative",
    "refuses to load it",
    '{path}: broken signal-shape file: \'{entry}\' is "{transform}", must be "log"',
)
case(
    "ntuple-truncated",
    "a truncated ntuple (an interrupted copy, a full disk)",
    "refuses it in every reader, so in every stage, before reading events",
    "{path}: truncated ROOT file ({size} of {expected} bytes); copy it again or rerun the stage that wrote it",
)
case(
    "ntuple-corrupted",
    "an ntuple with damaged bytes in its event data",
    "refuses it when the damaged basket is read (the ZSTD checksum of every compressed basket), naming the branch",
    "{path}: corrupted data in branch '{branch}' (a compressed block fails its checksum or does not decompress); "
    "copy it again or rerun the stage that wrote it",
)

# -- lost or stale results --------------------------------------------------------------
case(
    "scan-folder-busy",
    "a second scan into a folder while a scan is writing there",
    "refuses at once; the lock ends with the running scan's process, even a killed one",
    "{folder}: another scan is writing there; wait until it ends, or scan into another folder (-o/--output)",
)
case(
    "scan-stale-results",
    "a scan into a folder holding the tables and plots of a scan with other inputs (settings, shapes, data, code)",
    "removes them before computing, with a warning, so an interrupted scan never leaves old results looking current",
    "removed {files} in {folder}: results of a scan with other inputs",
)
case(
    "exclusion-no-scan",
    "`bumphunt exclusion` before a scan (or `--scan-table` naming a missing file)",
    "stops before writing anything",
    "no scan results at {path}: run `bumphunt scan` first",
)
case(
    "exclusion-not-a-scan-table",
    "a `--scan-table` that is an exclusion.json (any other file that is no table: the `read_table` rows)",
    "stops before writing anything",
    "{path}: an exclusion table, not the scan's results.json the exclusion converts",
)
case(
    "table-missing",
    "`read_table` of a file that does not exist",
    "refuses",
    "{path}: no such file",
)
case(
    "table-empty",
    "`read_table` of an empty file",
    "refuses",
    "{path}: empty file; copy it again or rerun the stage that wrote it",
)
case(
    "table-csv",
    "`read_table` of a CSV table (`results.csv` for `results.json`)",
    "refuses, naming the JSON table to read",
    "{path}: a CSV table; read_table reads the JSON table written beside it ({json})",
)
case(
    "table-truncated",
    "a truncated `results.json` or `exclusion.json` (an interrupted copy, a full disk)",
    "refuses it",
    "{path}: truncated JSON (it ends at line {line}); copy it again or rerun the stage that wrote it",
)
case(
    "table-not-json",
    "`read_table` of a text file that is not JSON",
    "refuses it",
    "{path}: not JSON ({reason} at line {line}, column {column}), so not a table bumphunt writes",
)
case(
    "table-other-json",
    "`read_table` of JSON that is no table (`signal_shapes.json`, `fingerprint.json`, `{}`), or of a binary file",
    "refuses it, saying what it is",
    "{path}: not a table bumphunt writes (a scan's or count's results.json, an exclusion.json): {what}",
)
case(
    "table-broken",
    "a table with a missing or malformed entry (no `global_significance`, rows without a mass)",
    "refuses it, naming the entry",
    "{path}: broken {kind} table: {reason}",
)
case(
    "plot-other-table",
    "a figure of a table of another kind (`plot_brazil` or `plot_local_significance` of an exclusion table, "
    "`plot_coupling_exclusion` of a scan table)",
    "refuses, naming the columns the table lacks",
    "{figure} draws the column(s) {columns}, which a {kind} table lacks",
)
case(
    "shapes-without-lifetime",
    "a signal-shape file without a lifetime map (a prompt sample, or ntuples without `proper_decay_length`)",
    "the exclusion converts with the generated efficiency and marks every row `(prompt efficiency: no lifetime "
    "map)`; asking the model for the efficiency at a lifetime stops",
    "the signal-shape file has no lifetime map (a prompt signal sample, or one without proper decay lengths: rerun "
    "`bumphunt simulate` and `bumphunt shapes`)",
)
case(
    "systematics-repeated-name",
    "two systematic sources of the same name",
    "refuses the configuration",
    "config error at 'systematics.sources': source names repeat ({names})",
)
case(
    "systematics-unordered-table",
    "a mass-dependent systematic size whose rows are not in increasing mass",
    "refuses the configuration",
    "config error at 'systematics.sources' ({name!r}): a size table needs [mass, size] rows in increasing mass",
)
case(
    "systematics-no-interpolation-errors",
    "a shape_interpolation source with a signal-shape file made before the shapes stored their interpolation errors",
    "stops before any fit",
    "config error at 'systematics.sources' ({name!r}): the signal-shape file has no interpolation errors (made "
    "before they were stored): rerun `bumphunt shapes`",
)
case(
    "sideband-fit-failed",
    "scan.background_from_sidebands with sidebands too empty to fit the background shape",
    "flags the mass point (NaN numbers, the reason in fit_status) and scans on",
    "background fit to the sidebands failed",
)

case(
    "scan-point-edited",
    "a finished mass point of a scan (scan/points/m*.json) edited by hand or damaged, then the scan resumed",
    "computes that point again (and resumes the others), and says so",
    "{path}: its row does not match its checksum (edited or damaged): computed again",
)

# -- your own samples (docs/own-analysis.md) ---------------------------------------------
case(
    "sample-unknown-role",
    "a sample whose role is not signal, background or data",
    "refuses the configuration",
    "config error at 'samples.{name}.role': {role} is not one of ['signal', 'background', 'data']",
)
case(
    "sample-glob-empty",
    "a sample whose file pattern matches no file",
    "stops before any fit",
    "config error at 'samples.{name}.files': {pattern} matches no file",
)
case(
    "sample-missing-branch",
    "a branch map naming a branch the file lacks (a missing alias)",
    "stops before writing, naming the file, the branch and the key",
    "{path}: tree '{tree}' has no branch {branch} (samples.{name}.branches.{quantity})",
)
case(
    "sample-mass-unreadable",
    "a signal file whose generated mass cannot be read from its name",
    "stops before writing",
    "{path}: samples.{name}.mass.filename {regex} does not match the file name",
)
case(
    "sample-mixed-beams",
    "candidates whose nominal sqrt(s) (the sqrt_s branch) changes between runs, without a per-run beam table",
    "stops: one beam four-vector cannot stand for them",
    "{path}: mixed beam energies (sqrt(s) {low}-{high} GeV in {expression}) without a per-run beam table: set "
    "samples.{name}.beam_table",
)
case(
    "sample-mev",
    "photon energies in MeV in a sample's files",
    "stops before writing",
    "{path}: photon energies up to {largest} (samples.{name}.branches.photon_E) exceed the beams' {total} GeV: are "
    "they in MeV? bumphunt reads GeV",
)
case(
    "stage-foreign-file",
    "a file bumphunt did not write where a stage would write (an analyst's ntuple in kinfit/)",
    "refuses, and leaves the file as it was",
    "{path}: a file bumphunt did not write is in the way (a stage never overwrites one); move it, or point the "
    "analysis at it as a sample",
)


# -- writing, locks and the cache (issue #26) ---------------------------------------------
case(
    "write-disk-full",
    "a full disk while a stage writes a file (a table, a figure, an ntuple, a record)",
    "stops, naming the file; the temporary file is removed and the file is as it was, so a rerun recovers",
    "{path}: no space left on the device while writing it; free some space and rerun (the file is as it was before)",
)
case(
    "write-quota",
    "a disk quota exceeded while a stage writes a file",
    "stops, naming the file; nothing half-written is left",
    "{path}: disk quota exceeded while writing it; free some space (or have the quota raised) and rerun (the file "
    "is as it was before)",
)
case(
    "write-permission",
    "no permission to write a file of a stage (a folder or file made read-only since the stage started)",
    "stops, naming the file; nothing half-written is left",
    "{path}: permission denied while writing it; make it and its folder writable and rerun (the file is as it was "
    "before)",
)
case(
    "write-read-only",
    "a disk that turned read-only while a stage writes a file",
    "stops, naming the file; nothing half-written is left",
    "{path}: the disk is read-only; set another output_dir (or -o/--output) and rerun (the file is as it was before)",
)
case(
    "folder-locked",
    "a second `bumphunt run` (or any stage command) writing to a folder another bumphunt command is writing to",
    "refuses at once, naming the command that holds the folder (`bumphunt run (process 1234 on host, since "
    "2025-01-31 14:02:11)`); the lock ends with that command's process, even a killed one",
    "{folder}: {holder} is writing there; wait until it ends, or write elsewhere (another output_dir, or -o/--output)",
)
case(
    "copied-folder",
    "an analysis folder copied without its modification times (`cp -r`)",
    "compares the content of the files whose time changed with the recorded hashes: every stage is skipped (and the "
    "records take the copies' times, so the next run reads no file)",
    "{stage}: up to date, skipped",
)
case(
    "output-edited-same-size",
    "an output file edited by hand keeping its size (a copy, so its time changed too)",
    "its content hash differs from the record's: reruns its stage and every later one",
    "{stage}: runs (output {name} was changed)",
)

# -- the Python API (issue #26) ---------------------------------------------------------------
case(
    "api-confidence-level",
    "a confidence level outside (0, 1) for a public function (`scan_spectrum(confidence_level=1.5)`) or in the "
    "configuration (`--set scan.confidence_level=1.5`)",
    "refuses before any work, with the one message of the configuration, the CLI and the API (it scanned ~2 "
    "minutes and flagged every row `limit not found` before)",
    "config error at '{section}.confidence_level': {value} is greater than or equal to the maximum of 1",
)
case(
    "api-luminosity",
    "a zero or negative luminosity for `scan_spectrum(luminosity=-1)`, `exclusion_row` or the configuration",
    "refuses before any work, as the configuration does (it gave NaN cross-section and coupling limits marked ok "
    "before)",
    "config error at 'luminosity': {value} is less than or equal to the minimum of 0",
)
case(
    "api-non-finite",
    "NaN or infinity for a setting of a public function (`scan_spectrum(luminosity=float('nan'))`, a counting "
    "model's `efficiency_uncertainty`)",
    "refuses before any work, naming the configuration key it stands for",
    "config error at '{setting}': {value} is not a finite number",
)
case(
    "api-unknown-setting",
    "a setting `scan_spectrum` does not know (`step_sigma=3`)",
    "refuses before any work, naming the closest key of the scan section",
    "config error: unknown key 'scan.{name}' (did you mean '{close}'?)",
)
case(
    "api-setting-bound",
    "a setting of a public function below the configuration's bound (`scan_spectrum(workers=-1)`, "
    "`window_sigmas=2`, a counting model's `background_uncertainty: -0.1`)",
    "refuses before any work, with the configuration's message",
    "config error at '{setting}': {value} is less than the minimum of {minimum}",
)
case(
    "config-inject-mass",
    "a zero or negative `scan.inject.mass` (the schema had no bound)",
    "refuses the configuration before any work (it injected at the lowest generated mass before)",
    "config error at 'scan.inject.mass': {value} is less than or equal to the minimum of 0",
)
case(
    "zfit-order",
    "a background order outside 0-8 for `zfit_hypothesis(order=-1)` (or `scan.background_order`)",
    "refuses, with the configuration's message",
    "config error at 'scan.background_order': {value} is not valid under any of the given schemas",
)
case(
    "zfit-order-auto",
    "`zfit_hypothesis(order='auto')` (the scan chooses the order window by window)",
    "refuses, saying what to give",
    "zfit_hypothesis: argument 'order': 'auto' chooses the order window by window in the scan; give the order of "
    "the background (0-8)",
)
case(
    "zfit-argument-bound",
    "a negative starting background yield for `zfit_hypothesis(n_bkg=-5)` (a raw zfit exception before)",
    "refuses, naming the argument",
    "{function}: argument '{name}': {value} is less than the minimum of {minimum}",
)
case(
    "zfit-argument-non-finite",
    "a NaN or infinite mass or starting yield for `zfit_hypothesis`",
    "refuses, naming the argument",
    "{function}: argument '{name}': {value} is not a finite number",
)
case(
    "scan-empty-range",
    "a scan range without a mass hypothesis (0.94-0.97 GeV lies in the eta' veto; start and stop closer than a "
    "step inside a veto), in `run_scan` or `scan_spectrum`",
    "refuses before any work, naming the range and the veto (a traceback in `plot_brazil` and header-only tables "
    "before)",
    "no mass hypothesis between {start} and {stop} GeV: every one lies in the {vetoes} veto ({ranges} GeV, "
    "scan.veto_sigmas = {veto_sigmas}); scan a wider range or lower scan.veto_sigmas",
)
case(
    "plot-empty-table",
    "`plot_brazil`, `plot_local_significance`, `plot_coupling_exclusion` or `plot_cross_section_limits` of a "
    "table without rows (`read_table` reads one back as an empty result)",
    "draws axes that say so in their centre, no traceback",
    "no mass hypothesis",
)
case(
    "stage-settings-disagree",
    "a stage run on the outputs of an earlier one made with another value of a setting both read: "
    "`bumphunt scan --set luminosity=362000` on a finished 445 pb^-1 analysis (ran on the old pseudo-data and "
    "converted with the new luminosity before)",
    "refuses before any work, naming the folder, the setting and both values",
    "{folder} was made with {setting} = {before}, this {stage} has {now}: run `bumphunt run` with it (stages whose "
    "settings changed rerun) or set it back",
)
case(
    "weights-without-luminosity",
    "weights read at a luminosity from an ntuple whose metadata give none (not written by bumphunt)",
    "refuses: its weights cannot be brought to the analysis' luminosity",
    "{path}: its metadata give no luminosity_pb_inv, so its weights cannot be brought to {luminosity} pb^-1",
)
case(
    "histogram-bins-too-wide",
    "histogram bins for pseudo-data or data wider than a third of the mass resolution "
    "(`BackgroundModel.sample_histogram(seed, bins_per_sigma=1)`, `histogram_edges`)",
    "refuses before drawing: such bins smear the peak the fits look for",
    "histogram bins of sigma(m) / {bins_per_sigma} are too wide for the fits: use at least {minimum} bins per "
    "resolution (default {default})",
)
case(
    "histogram-every-candidate-outside",
    "data filled into the scan's histogram whose every candidate lies above sqrt(s) (masses in MeV)",
    "refuses, suspecting the unit",
    "every one of the {n} candidates lies outside the histogram's {low}-{high} GeV: masses in MeV? convert them to GeV",
)
case(
    "existing-limit-no-reference",
    "a published-limit CSV for `existing_limits(folder)` whose # lines name no journal reference",
    "refuses, naming the file: a curve on the sensitivity figure must say where it was published",
    "{path}: no journal reference (such as 'Phys. Lett. B 838 (2023) 137698') in its # lines; say where the "
    "curve was published",
)
