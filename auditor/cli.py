"""Command-line interface: parse options, run the pipeline, print a summary, set the exit code.

Exit codes (documented in the README):

* 0 — the run completed and nothing reached the ``--fail-on`` level;
* 1 — the run completed and at least one response reached the ``--fail-on`` level;
* 2 — usage error (unknown option, bad value);
* 3 — unusable input: a capture or trust anchor file is missing, unreadable or not what it
  claims to be; nothing was audited;
* 4 — the run completed but part of a capture could not be read (truncated or corrupt
  records); everything before the damage was audited;
* 70 — internal error (a bug: please report it with the traceback).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from auditor import __version__
from auditor.cli_live import live as live_command
from auditor.errors import AuditorError, CaptureError, ProcessLost
from auditor.memo import skip_collection_at_exit, tune_garbage_collector
from auditor.pipeline import AuditOptions, AuditOutcome, default_out_dir, run_audit
from auditor.report.anonymize import load_or_create_key
from auditor.report.check import SCHEMA_CHECKS
from auditor.report.run import DEFAULT_FORMATS, OutputFormat, render_reports
from auditor.trust import KeyCache
from auditor.trust.cache import cache_use_line
from auditor.validate import PRESETS, policy_from_name

T = TypeVar("T")

logger = logging.getLogger("auditor")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_PARTIAL = 4
EXIT_INTERNAL = 70

FAIL_LEVELS = ("never", "bogus", "indeterminate", "insecure")
"""``--fail-on`` levels, from the most lenient; each includes the ones before it."""


def _configure_logging(quiet: bool, verbose: int) -> None:
    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dnssec-auditor: %(levelname)s: %(message)s"))
    package_logger = logging.getLogger("auditor")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dnssec-auditor")
def cli() -> None:
    """Passive DNSSEC auditor: validate the DNS answers found in packet captures."""


def _port_set(ports: tuple[int, ...]) -> frozenset[int]:
    for port in ports:
        if not 0 < port < 65536:
            raise click.BadParameter(f"{port} is not a port number", param_hint="--port")
    return frozenset({53, *ports})


def _print_summary(outcome: AuditOutcome, out_dir: Path) -> None:
    stats = outcome.stats
    frames = stats["frames"]
    matching = stats["matching"]
    click.echo(
        f"dnssec-auditor: {stats['frames_read']} frames read, "
        f"{frames['dns_message']} in DNS messages, {matching['responses']} responses "
        f"({matching['matched_responses']} matched, {matching['unsolicited_responses']} "
        f"unsolicited), {matching['unanswered_queries']} queries unanswered",
        err=True,
    )
    other = {k: v for k, v in frames.items() if v and k != "dns_message"}
    if other:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(other.items(), key=lambda kv: -kv[1]))
        click.echo(f"  other frames: {listed}", err=True)
    for problem in outcome.capture_problems:
        click.echo(f"  capture problem: {problem}", err=True)
    verdicts = stats["validation"]["verdicts"]
    click.echo(
        "  verdicts: " + ", ".join(f"{name} {count}" for name, count in verdicts.items()),
        err=True,
    )
    _print_findings_summary(stats.get("findings") or {})
    _print_problems(stats)
    if isinstance(stats.get("key_cache"), dict):
        click.echo(f"  {cache_use_line(stats['key_cache'])}", err=True)
    click.echo(f"  reports in {out_dir}/", err=True)
    report = out_dir / "report.html"
    if report.exists():
        click.echo(f"  open {report} for the bogus/forged answers and why", err=True)


TOP_SHOWN = 5
"""Problems the stderr summary lists in words."""


def _print_problems(stats: dict[str, Any]) -> None:
    """The top problems in words: why clients failed, then the most severe findings with
    what to do about each (zone, what is wrong, how many, first frame)."""
    found = stats.get("resolution")
    resolution: dict[str, Any] = found if isinstance(found, dict) else {}
    causes = list(resolution.get("top") or [])
    if causes:
        click.echo(f"  why clients failed ({resolution.get('failed', 0)} answers):", err=True)
        for group in causes[:3]:
            click.echo(f"    {group.get('count')}x {group.get('explanation')} (first client "
                       f"answer: frame {group.get('first_frame')})", err=True)
    findings = stats.get("findings") if isinstance(stats.get("findings"), dict) else {}
    top = list((findings or {}).get("top") or [])
    if not top:
        return
    click.echo("  top problems:", err=True)
    for number, row in enumerate(top[:TOP_SHOWN], 1):
        times = f"{row.get('count')} time{'s' if row.get('count') != 1 else ''}"
        click.echo(f"    {number}. [{row.get('severity')}] {row.get('message')} ({times}, "
                   f"first frame {row.get('first_frame')} of {row.get('capture')})", err=True)
        if row.get("remediation"):
            click.echo(f"       what to do: {row['remediation']}", err=True)


def _print_findings_summary(findings: dict[str, object]) -> None:
    by_severity = findings.get("by_severity") or {}
    if not isinstance(by_severity, dict):
        return
    listed = ", ".join(f"{severity} {count}" for severity, count in by_severity.items())
    forged = findings.get("forged", 0)
    click.echo(f"  findings: {listed or 'none'}; forged answers {forged}", err=True)
    mismatches = findings.get("trust_anchor_mismatch") or []
    for mismatch in mismatches if isinstance(mismatches, list) else []:
        click.echo(f"  {mismatch.get('answers')} answers fail only at the trust anchor, "
                   f"{mismatch.get('detail')}", err=True)


@cli.command()
@click.argument("captures", nargs=-1)
@click.option(
    "-r",
    "--read",
    "read_captures",
    multiple=True,
    metavar="FILE",
    help="A capture file to audit, as tcpdump/tshark -r takes it (repeatable; the same as "
    "giving it as an argument).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory (default: reports/<capture name>/).",
)
@click.option(
    "--port",
    "ports",
    type=int,
    multiple=True,
    help="Treat this port as DNS too (repeatable; 53 is always included).",
)
@click.option(
    "--filter",
    "bpf_filter",
    metavar="EXPR",
    help="Audit only the frames matching this BPF expression (tcpdump syntax, e.g. "
    "'host 192.0.2.53'); the others are counted as filtered_out, frame numbers unchanged.",
)
@click.option(
    "--trust-anchor",
    "trust_anchors",
    type=click.Path(dir_okay=False, path_type=str),
    multiple=True,
    help="Trust anchor file: DS/DNSKEY zone-file text, BIND trust-anchors/trusted-keys, "
    "Unbound anchor file or IANA root-anchors.xml (repeatable). An anchor for the root "
    "replaces the embedded IANA root anchors.",
)
@click.option(
    "--keys",
    "keys_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite key cache to read and update: its trusted keys validate answers whose chain "
    "the capture lacks (counted as trust_from_cache). Without --keys, keys.sqlite in the "
    "output directory is written but not read, so a rerun gives the same verdicts.",
)
@click.option(
    "--at",
    "at_time",
    metavar="TIME",
    help="Judge every signature at this time (ISO 8601, e.g. 2026-11-25T12:00:00Z, or Unix "
    "seconds) instead of each packet's capture time.",
)
@click.option(
    "--policy",
    type=click.Choice(sorted(PRESETS)),
    default="rfc8624",
    show_default=True,
    help="Algorithm and digest policy preset.",
)
@click.option(
    "--clock-skew",
    type=click.IntRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Tolerance applied to RRSIG inception and expiration (default: the policy's).",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_LEVELS),
    default="never",
    show_default=True,
    help="Exit with status 1 if any response's verdict is this bad or worse "
    "(bogus < indeterminate < insecure in leniency).",
)
@click.option(
    "--anonymize",
    is_flag=True,
    help="Replace client addresses in every output with keyed, prefix-preserving "
    "pseudonyms (Crypto-PAn) for reports that leave the building.",
)
@click.option(
    "--anonymize-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the anonymisation secret (same secret, same pseudonyms across runs); "
    "default: a random key kept in anonymize.key in the output directory. Implies "
    "--anonymize.",
)
@click.option("--csv", "with_csv", is_flag=True, help="Also write responses.csv.")
@click.option(
    "--evidence",
    "evidence_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the frames behind every forged or suspicious finding to this pcapng file "
    "(stats.json records its SHA-256 and those of the inputs).",
)
@click.option(
    "--no-checksums",
    is_flag=True,
    help="Do not verify UDP/TCP checksums (faster; bad ones are then not counted).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Processes (0, the default: every core this process may use, counting a CPU "
    "quota, or one for captures under 4 MiB in all; 1: one process). 2 or more: a pipeline of two "
    "processes, this one reading and judging, a second one running the finding stages and "
    "writing every output, the key pass shared between them (with 3 or more, split over "
    "that many processes, at most 8); the outputs are those of --jobs 1, in the same order. "
    "Standard input is always audited in one process. See the README for measured speed.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    callback=lambda ctx, param, value: _scheduler(value),
    help="Run on a Dask cluster: a scheduler address (tcp://host:8786) or local:N for a "
    "local cluster of N worker processes. Captures may be fsspec URLs or globs; Parquet "
    "and JSON Lines are also written partitioned by capture date and file.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary; errors only.")
@click.option("--verbose", "-v", count=True, help="More log output (repeat for debug).")
def audit(
    captures: tuple[str, ...],
    read_captures: tuple[str, ...],
    out_dir: Path | None,
    ports: tuple[int, ...],
    bpf_filter: str | None,
    trust_anchors: tuple[str, ...],
    keys_path: Path | None,
    at_time: str | None,
    policy: str,
    clock_skew: int | None,
    fail_on: str,
    anonymize: bool,
    anonymize_key: Path | None,
    with_csv: bool,
    evidence_path: Path | None,
    no_checksums: bool,
    jobs: int,
    scheduler: str | None,
    quiet: bool,
    verbose: int,
) -> None:
    """Audit the DNS responses in CAPTURE files (pcap, pcapng, .gz; '-' for stdin)."""
    _configure_logging(quiet, verbose)
    captures = (*read_captures, *captures)
    if not captures:
        raise click.UsageError("no capture given: name one or more files (or -r FILE, "
                               "or '-' for stdin)")
    if evidence_path is not None and (anonymize or anonymize_key):
        # The evidence file is the captured frames as they are: addresses in IP headers, in
        # DNS payloads (PTR names, EDNS Client Subnet) and in checksums. Pseudonyms in the
        # reports would be undone by shipping it next to them.
        raise click.UsageError(
            "--evidence keeps the captured frames as they are (real addresses in headers and "
            "DNS payloads), which --anonymize cannot make safe to share: run once with "
            "--anonymize for the reports you share and once with --evidence for the packets "
            "you keep")
    if scheduler is not None:  # globs and fsspec URLs name the captures
        from auditor.scale.dask import expand_captures

        captures = expand_captures(captures)
    target = out_dir if out_dir is not None else default_out_dir(captures)
    _check_writable_dir(target)
    secret = (
        load_or_create_key(target, anonymize_key) if anonymize or anonymize_key else None
    )
    formats = frozenset(f.value for f in DEFAULT_FORMATS) | ({"csv"} if with_csv else set())
    options = AuditOptions(
        captures=captures,
        out_dir=target,
        ports=_port_set(ports),
        verify_checksums=not no_checksums,
        progress=not quiet and sys.stderr.isatty(),
        trust_anchors=trust_anchors,
        keys_path=keys_path,
        at_ns=_parse_time(at_time) if at_time is not None else None,
        policy=policy_from_name(policy, clock_skew_s=clock_skew),
        anonymize_secret=secret,
        report_formats=formats,
        evidence_path=evidence_path,
        frame_filter=bpf_filter,
    )
    try:
        outcome = _run(options, jobs, scheduler)
    except ProcessLost as exc:  # --jobs's reporting process or a cluster's workers died
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INTERNAL)
    except CaptureError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    except AuditorError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    except OSError as exc:
        # Writing an output failed mid-run (disk full, permissions changed): say which file.
        where = exc.filename or target
        click.echo(f"dnssec-auditor: error: cannot write {where}: {exc.strerror or exc}",
                   err=True)
        sys.exit(EXIT_INPUT)
    failed = _fails(outcome.verdicts, fail_on)
    if not outcome.stats["frames"].get("dns_message"):
        _say_nothing_audited(captures, options.ports, outcome.stats)
    if not quiet:
        _print_summary(outcome, target)
    elif failed:  # -q stays quiet unless the run fails: then say why
        click.echo(f"dnssec-auditor: responses at --fail-on {fail_on} or worse; reports in "
                   f"{target}/", err=True)
        _print_problems(outcome.stats)
    if failed:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_PARTIAL if outcome.capture_problems else EXIT_OK)


def _scheduler(value: str | None) -> str | None:
    """``--scheduler`` as given, once a ``local:N`` is checked (an address is checked by
    connecting to it)."""
    if value is not None:
        from auditor.scale.dask import local_workers

        try:
            local_workers(value)
        except ValueError as exc:
            raise click.BadParameter(f"{value}: {exc}", param_hint="--scheduler") from exc
    return value


def _run(options: AuditOptions, jobs: int, scheduler: str | None) -> AuditOutcome:
    """The audit on one process, on ``jobs`` processes (0: every core), or on a Dask
    cluster."""
    if scheduler is not None:
        from auditor.scale.dask import run_on_dask

        return run_on_dask(options, scheduler)
    if jobs == 1:
        return run_audit(options)
    from auditor.scale.cores import default_file_jobs
    from auditor.scale.jobs import run_jobs
    from auditor.scale.reporting import key_pass_processes

    if jobs > 2:  # asked for by name (0, every core, says nothing: the README explains it)
        logger.warning("--jobs %d: the key pass runs on %d processes, the rest of the audit "
                       "on 2 (a judging and a reporting one; README, \"Several cores\")",
                       jobs, key_pass_processes(jobs))

    return run_jobs(options, jobs or default_file_jobs(options.captures))


def _say_nothing_audited(captures: tuple[str, ...], ports: frozenset[int],
                         stats: dict[str, Any]) -> None:
    """No DNS message on the DNS ports: say so (even with -q), and name the other UDP/TCP
    ports whose payloads look like DNS, as --port options."""
    from auditor.capture.sources import CaptureSet
    from auditor.decode.census import dns_like_ports

    listed = ", ".join(str(p) for p in sorted(ports))
    click.echo(f"dnssec-auditor: nothing was audited: no DNS message on port(s) {listed} "
               f"among {stats['frames_read']} frames", err=True)
    if "-" in captures:
        return  # standard input cannot be read again
    try:
        with CaptureSet(list(captures)) as again:
            found = dns_like_ports(again, ports)
    except (AuditorError, OSError):
        return
    # A server port counts in queries and answers alike; a client's ephemeral port only in
    # its own few exchanges: keep the ports near the busiest.
    top = max(found.values(), default=0)
    common = [(key, n) for key, n in found.most_common(5) if n >= max(3, top // 10)]
    if not common:
        click.echo("  no other UDP/TCP port carries DNS-looking payloads either", err=True)
        return
    carried = ", ".join(f"{name.upper()} port {port} ({n} DNS-looking payloads)"
                        for (name, port), n in common)
    options = " ".join(f"--port {port}" for port in dict.fromkeys(p for (_, p), _ in common))
    click.echo(f"  DNS seems to run on other ports: {carried}; try {options}", err=True)


def _check_writable_dir(directory: Path) -> None:
    """Create the output directory, or end with a usage error naming it (a path under a
    file, a read-only filesystem, no permission) before any work is done."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot write to {directory}: {exc.strerror or exc}",
                                 param_hint="--out") from exc


def _fails(verdicts: dict[str, int], level: str) -> bool:
    """Whether any verdict is at ``level`` or worse (bogus is the worst)."""
    if level == "never":
        return False
    included = FAIL_LEVELS[1 : FAIL_LEVELS.index(level) + 1]
    return any(verdicts.get(status, 0) for status in included)


_LATEST_AT_S = 2**32 - 1
"""RRSIG inception/expiration are 32-bit seconds (RFC 4034 3.1.5): ``--at`` stays within
1970-01-01 .. 2106-02-07 so every signature time is comparable with it."""


def _parse_time(text: str) -> int:
    """``--at`` value: Unix seconds or ISO 8601 (naive means UTC), in nanoseconds; a value
    outside 1970..2106 (or not a number or date) is a usage error."""
    seconds = _seconds_of(text)
    if not 0 <= seconds <= _LATEST_AT_S:
        raise click.BadParameter(
            f"{text!r} is outside 1970-01-01..2106-02-07 (RRSIG times are 32-bit, "
            "RFC 4034 3.1.5)", param_hint="--at")
    return int(seconds * 1_000_000_000)


def _seconds_of(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value != value or value in (float("inf"), float("-inf")):  # NaN, infinity
            raise click.BadParameter(f"{text!r} is not a time", param_hint="--at")
        return value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError) as exc:
        raise click.BadParameter(
            f"{text!r} is neither ISO 8601 nor Unix seconds", param_hint="--at"
        ) from exc


@cli.command()
@click.argument(
    "directory", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--format",
    "formats",
    type=click.Choice([f.value for f in OutputFormat]),
    multiple=True,
    help="Output to rebuild (repeatable): html (report.html), md (summary.md), parquet "
    "(responses.parquet/), csv (responses.csv). Default: html and md.",
)
def report(directory: Path, formats: tuple[str, ...]) -> None:
    """Re-render the reports of an audit output DIRECTORY from its saved JSONL/Parquet files,
    without reading the capture again."""
    if not (directory / "responses.jsonl").exists():
        click.echo(f"dnssec-auditor: error: {directory} has no responses.jsonl", err=True)
        sys.exit(EXIT_INPUT)
    chosen = [OutputFormat(f) for f in formats] or [OutputFormat.HTML, OutputFormat.MARKDOWN]
    SCHEMA_CHECKS.set(True)  # files a user hands over: every record checked (exit 3 if not)
    try:
        written = render_reports(directory, chosen)
    except AuditorError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    for path in written:
        click.echo(f"wrote {path}", err=True)


@cli.group()
def keys() -> None:
    """Manage the SQLite key cache (keys learned from earlier captures)."""
    _configure_logging(quiet=False, verbose=0)  # unusable rows are skipped with a warning


_KEYS_OPTION = click.option(
    "--keys",
    "keys_path",
    type=click.Path(dir_okay=False, path_type=str),
    required=True,
    help="The SQLite key cache file.",
)


@keys.command("list")
@_KEYS_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
def keys_list(keys_path: str, as_json: bool) -> None:
    """List the keys in the cache with their state (trusted, seen, revoked) and how each
    trusted key was validated."""
    with _open_existing_cache(keys_path) as cache:
        rows = _cache_call(cache.list)
    for row in rows:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(row)))
        else:
            click.echo(
                f"{row.zone}\t{row.key_tag}\talg {row.algorithm}\tflags {row.flags}\t"
                f"{row.state}\t{row.validated_by or '-'}"
            )


@keys.command("import")
@_KEYS_OPTION
@click.option(
    "--trusted",
    is_flag=True,
    help="Trust every key of SOURCE that it does not mark otherwise (you vouch for the file: "
    "its keys will validate answers in runs that read this cache). Without it a DNSKEY "
    "without a dnssec-auditor state annotation is imported as seen, which validates nothing.",
)
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=str))
def keys_import(keys_path: str, trusted: bool, source: str) -> None:
    """Import DNSKEYs (zone-file text or a JSON export) into the cache, each keeping the trust
    state its export recorded; unannotated keys are imported as seen unless --trusted."""
    with _open_cache(keys_path) as cache:
        before = _cache_call(cache.state_counts)
        count = _cache_call(lambda: cache.import_file(source, trusted=trusted))
        after = _cache_call(cache.state_counts)
    gained = after["trusted"] - before["trusted"]
    click.echo(
        f"imported {count} keys from {source} into {keys_path}; the cache now holds "
        f"{after['trusted']} trusted ({gained:+d}), {after['seen']} seen, "
        f"{after['revoked']} revoked",
        err=True,
    )


@keys.command("export")
@_KEYS_OPTION
@click.argument("target", type=click.Path(dir_okay=False, path_type=str))
def keys_export(keys_path: str, target: str) -> None:
    """Export the cache as JSON (or zone-file text when TARGET ends in .zone, .key or .txt,
    each key annotated with its trust state so that an import keeps it); '-' writes JSON to
    standard output."""
    with _open_existing_cache(keys_path) as cache:
        if target == "-":
            text, count = _cache_call(lambda: cache.export_text(zone_format=False))
            click.echo(text, nl=False)
            click.echo(f"exported {count} keys to standard output", err=True)
            return
        count = _cache_call(lambda: cache.export(target))
    click.echo(f"exported {count} keys to {target}", err=True)


def _open_cache(path: str) -> KeyCache:
    return _cache_call(lambda: KeyCache(path))


def _open_existing_cache(path: str) -> KeyCache:
    """A cache to read from: a missing file is an error, not a new empty database."""
    if not Path(path).is_file():
        click.echo(f"dnssec-auditor: error: {path}: no key cache there (audit --keys "
                   f"{path} creates one; keys import fills one)", err=True)
        sys.exit(EXIT_INPUT)
    return _open_cache(path)


def _cache_call(call: Callable[[], T]) -> T:
    try:
        return call()
    except AuditorError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INPUT)


cli.add_command(live_command, name="live")


def main() -> None:
    """Console-script entry point; turns unexpected exceptions into exit code 70."""
    tune_garbage_collector()
    try:
        cli(standalone_mode=True)
    except SystemExit:
        skip_collection_at_exit()
        raise
    except Exception:
        logger.exception("internal error")
        sys.exit(EXIT_INTERNAL)
