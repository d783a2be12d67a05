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

import logging
import sys
from pathlib import Path

import click

from auditor import __version__
from auditor.errors import AuditorError, CaptureError
from auditor.pipeline import AuditOptions, AuditOutcome, default_out_dir, run_audit

logger = logging.getLogger("auditor")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_PARTIAL = 4
EXIT_INTERNAL = 70


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
    click.echo(f"  reports in {out_dir}/", err=True)


@cli.command()
@click.argument("captures", nargs=-1, required=True)
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary; errors only.")
@click.option("--verbose", "-v", count=True, help="More log output (repeat for debug).")
def audit(
    captures: tuple[str, ...],
    out_dir: Path | None,
    ports: tuple[int, ...],
    quiet: bool,
    verbose: int,
) -> None:
    """Audit the DNS responses in CAPTURE files (pcap, pcapng, .gz; '-' for stdin)."""
    _configure_logging(quiet, verbose)
    target = out_dir if out_dir is not None else default_out_dir(captures)
    options = AuditOptions(
        captures=captures,
        out_dir=target,
        ports=_port_set(ports),
        progress=not quiet and sys.stderr.isatty(),
    )
    try:
        outcome = run_audit(options)
    except CaptureError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    except AuditorError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    if not quiet:
        _print_summary(outcome, target)
    sys.exit(EXIT_PARTIAL if outcome.capture_problems else EXIT_OK)


def main() -> None:
    """Console-script entry point; turns unexpected exceptions into exit code 70."""
    try:
        cli(standalone_mode=True)
    except SystemExit:
        raise
    except Exception:
        logger.exception("internal error")
        sys.exit(EXIT_INTERNAL)
