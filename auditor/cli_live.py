"""The ``live`` subcommand: parse its options, run the live loop, exit 0 after a clean stop."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import click

from auditor.errors import AuditorError, CaptureError
from auditor.live import AlertFormat, LiveLimits, LiveOptions, run_live
from auditor.report.rolling import Rotation
from auditor.scale.pipe import ReporterFailed
from auditor.validate import PRESETS, policy_from_name

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_INPUT = 3
EXIT_SOFTWARE = 70
"""Like sysexits ``EX_SOFTWARE``: the reporting process of ``--jobs 2`` died."""
EXIT_PRIVILEGE = 77
"""Like sysexits ``EX_NOPERM``: capture is not permitted (neither root nor CAP_NET_RAW)."""


def _configure_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dnssec-auditor: %(levelname)s: %(message)s"))
    package_logger = logging.getLogger("auditor")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False


def _size(text: str) -> int:
    """``100M``, ``2G``, ``512k`` or plain bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 100M)") from exc


_NOT_CAPS = frozenset({"hold_ns", "burst_window_ns", "alert_interval_ns"})
"""LiveLimits fields that are not entry/byte caps (set by their own options)."""


def _limit_names() -> list[str]:
    return sorted(f.name for f in dataclasses.fields(LiveLimits) if f.name not in _NOT_CAPS)


def _parse_limits(items: tuple[str, ...]) -> dict[str, int]:
    """``NAME=N`` pairs naming ``LiveLimits`` fields, e.g. ``zones=5000``."""
    names = set(_limit_names())
    found: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in names:
            raise click.BadParameter(f"{name!r} is not a limit; known: {', '.join(sorted(names))}",
                                     param_hint="--limit")
        try:
            number = int(value)
        except ValueError as exc:
            raise click.BadParameter(f"{item!r}: the value must be a whole number",
                                     param_hint="--limit") from exc
        if number < 1:
            raise click.BadParameter(f"{item!r}: the value must be at least 1",
                                     param_hint="--limit")
        found[name] = number
    return found


def _limits(hold_s: float, *, max_fragment_sets: int | None, max_tcp_flows: int | None,
            max_pending_queries: int | None, max_held_responses: int | None,
            max_cache_entries: int | None, extra: dict[str, int] | None = None) -> LiveLimits:
    """The state caps from the command line; an option left out keeps the default, and
    ``--limit NAME=N`` (``extra``) sets any cap by its ``LiveLimits`` name, last."""
    caps: dict[str, int] = {"hold_ns": int(hold_s * 1_000_000_000)}
    given = {"fragment_sets": max_fragment_sets, "tcp_flows": max_tcp_flows,
             "pending_queries": max_pending_queries, "held_responses": max_held_responses}
    caps.update({name: value for name, value in given.items() if value is not None})
    if max_cache_entries is not None:
        caps.update(dict.fromkeys(
            ("parse_cache", "facts_memo", "record_cache", "digest_memo", "signature_memo",
             "verdict_cache"),
            max_cache_entries))
    caps.update(extra or {})
    return LiveLimits(**caps)


def _processes(jobs: int) -> int:
    """``--jobs``: 1 or 2 processes (the split has two sides; 0: as the cores allow)."""
    if jobs == 0:
        from auditor.scale.cores import default_jobs

        jobs = default_jobs()
    return min(max(jobs, 1), 2)


def _at_ns(text: str | None) -> int | None:
    """``--at`` in nanoseconds, parsed as ``audit --at`` is."""
    if text is None:
        return None
    from auditor.cli import _parse_time  # auditor.cli imports this module

    return _parse_time(text)


@click.command()
@click.option("--interface", "-i", "interfaces", multiple=True, metavar="IFACE",
              help="Capture on this interface (repeatable: several interfaces in one run).")
@click.option("--read", "read", metavar="FILE",
              help="Read a pcap/pcapng stream instead of an interface ('-' for standard input, "
              "e.g. 'tcpdump -w - | dnssec-auditor live --read -').")
@click.option("--filter", "bpf", metavar="BPF",
              help="Capture filter (default: DNS ports plus every IPv4/IPv6 fragment).")
@click.option("--port", "ports", type=int, multiple=True,
              help="Treat this port as DNS too (repeatable; 53 is always included).")
@click.option("--trust-anchor", "trust_anchors", multiple=True,
              type=click.Path(dir_okay=False, path_type=str), help="Trust anchor file.")
@click.option("--keys", "keys_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite key cache (default: keys.sqlite in DIR); kept across restarts.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports/live"), show_default=True,
              help="Directory of the rolling outputs and stats.json.")
@click.option("--at", "at_time", metavar="TIME",
              help="Judge every signature at this time (ISO 8601 or Unix seconds), e.g. when "
              "an incident capture is replayed onto the tap; default: each packet's capture "
              "time (with --read, the stream's own timestamps, so an old capture is judged "
              "as it was).")
@click.option("--policy", type=click.Choice(sorted(PRESETS)), default="rfc8624",
              show_default=True, help="Algorithm and digest policy preset.")
@click.option("--clock-skew", type=click.IntRange(min=0), default=None, metavar="SECONDS",
              help="Tolerance applied to RRSIG inception and expiration.")
@click.option("--alerts", "alerts_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write alerts (one JSON object per line) to FILE instead of standard "
              "output, appending to an existing FILE. FILE is always the file being written; "
              "it is rotated like the other outputs (--rotate-seconds, --rotate-size, SIGHUP) "
              "the logrotate / Python RotatingFileHandler way: FILE is renamed FILE.1 (FILE.1 "
              "becomes FILE.2, and so on) and a new FILE is created at once, so 'tail -F' and "
              "Filebeat follow it. At most --keep-files numbered pieces are kept (0: all).")
@click.option("--format", "alert_format", type=click.Choice([f.value for f in AlertFormat]),
              default=AlertFormat.JSON.value, show_default=True,
              help="Alert output: 'json' (one dnssec-auditor/findings/2 record per line) or "
              "'eve' (Suricata EVE events: an 'alert' event per alert and a 'dns' event per "
              "judged response, for pipelines built on eve.json).")
@click.option("--syslog", "syslog_socket", metavar="SOCKET",
              help="Also send every alert to syslog through this unix socket (e.g. /dev/log).")
@click.option("--rotate-seconds", type=click.FloatRange(min=0), default=3600.0,
              show_default=True, help="Start new output files after this many seconds (0: never).")
@click.option("--rotate-size", default="256M", show_default=True,
              help="Start new output files once one reaches this size (0: never).")
@click.option("--keep-files", type=click.IntRange(min=0), default=168, show_default=True,
              help="Output pieces kept per output; older ones are deleted (0: keep all).")
@click.option("--stats-interval", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds between stats lines on standard error.")
@click.option("--evidence", is_flag=True,
              help="Keep rolling pcapng files of the frames behind forged/suspicious findings.")
@click.option("--hold", "hold_s", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Seconds an indeterminate response waits for the keys it needs; its "
              "forgery checks and alerts wait with it.")
@click.option("--max-fragment-sets", type=click.IntRange(min=1), default=None, metavar="N",
              help="IP fragment sets reassembled at once (default 10000).")
@click.option("--max-tcp-flows", type=click.IntRange(min=1), default=None, metavar="N",
              help="TCP streams reassembled at once (default 20000).")
@click.option("--max-pending-queries", type=click.IntRange(min=1), default=None, metavar="N",
              help="Queries waiting for their response (default 100000).")
@click.option("--max-held-responses", type=click.IntRange(min=1), default=None, metavar="N",
              help="Responses waiting for late keys (default 10000).")
@click.option("--max-cache-entries", type=click.IntRange(min=1), default=None, metavar="N",
              help="Entries of each memo: parsed messages, message facts, RRset digests, "
              "signature checks, verdicts (default 10000-20000 each).")
@click.option("--limit", "limit_items", multiple=True, metavar="NAME=N",
              help="Set any state cap by name (repeatable), e.g. --limit zones=5000 --limit "
              "signed_copies=20000; names: " + ", ".join(_limit_names()) + ". Applied after "
              "the --max-* options.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="N",
              help="Serve Prometheus metrics at http://ADDRESS:N/metrics (frames read and "
              "dropped, responses by verdict, findings by code and severity, held responses, "
              "table sizes and evictions, capture lag).")
@click.option("--metrics-address", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address the metrics endpoint listens on.")
@click.option("--verdict-cache/--no-verdict-cache", default=True, show_default=True,
              help="Judge each distinct answer once while its verdict holds (same key "
              "material, signatures still valid); --no-verdict-cache judges every response.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=1, show_default=True,
              help="Processes: 1 captures, judges and reports in one; 2 (or more) captures, "
              "decodes and judges in one and reports (finding stages, outputs, alerts, "
              "stats, metrics) in a second, with the same outputs as 1; 0: 2 when this "
              "process may use 2 cores or more. See the README for the measured rates.")
@click.option("--verbose", "-v", count=True, help="More log output (repeat for debug).")
def live(
    interfaces: tuple[str, ...], read: str | None, bpf: str | None, ports: tuple[int, ...],
    trust_anchors: tuple[str, ...], keys_path: Path | None, out_dir: Path,
    at_time: str | None, policy: str,
    clock_skew: int | None, alerts_path: Path | None, alert_format: str,
    syslog_socket: str | None,
    rotate_seconds: float, rotate_size: str, keep_files: int, stats_interval: float,
    evidence: bool, hold_s: float, max_fragment_sets: int | None, max_tcp_flows: int | None,
    max_pending_queries: int | None, max_held_responses: int | None,
    max_cache_entries: int | None, limit_items: tuple[str, ...], metrics_port: int | None,
    metrics_address: str, verdict_cache: bool, jobs: int, verbose: int,
) -> None:
    """Audit DNS traffic as it happens, on interfaces or a pcap stream, until SIGINT/SIGTERM.

    Alerts (bogus, forged, suspicious) go to standard output as JSON lines; responses and
    findings go to rolling files in --out; SIGHUP rotates them.
    """
    _configure_logging(verbose)
    if bool(interfaces) == bool(read):
        raise click.UsageError("give --interface (one or more) or --read, not both")
    for port in ports:
        if not 0 < port < 65536:
            raise click.BadParameter(f"{port} is not a port number", param_hint="--port")
    options = LiveOptions(
        out_dir=out_dir, interfaces=interfaces, read=read, bpf=bpf,
        ports=frozenset({53, *ports}), trust_anchors=trust_anchors, keys_path=keys_path,
        policy=policy_from_name(policy, clock_skew_s=clock_skew), alerts_path=alerts_path,
        syslog_socket=syslog_socket, alert_format=AlertFormat(alert_format),
        at_ns=_at_ns(at_time), metrics_port=metrics_port, metrics_address=metrics_address,
        rotation=Rotation(rotate_seconds, _size(rotate_size), keep_files),
        evidence=evidence, stats_interval_s=stats_interval, verdict_cache=verdict_cache,
        jobs=_processes(jobs),
        limits=_limits(hold_s, max_fragment_sets=max_fragment_sets, max_tcp_flows=max_tcp_flows,
                       max_pending_queries=max_pending_queries,
                       max_held_responses=max_held_responses,
                       max_cache_entries=max_cache_entries,
                       extra=_parse_limits(limit_items)),
    )
    try:
        outcome = run_live(options, stats_stream=sys.stderr)
    except CaptureError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_PRIVILEGE if "CAP_NET_RAW" in str(exc) else EXIT_INPUT)
    except ReporterFailed as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_SOFTWARE)
    except AuditorError as exc:
        click.echo(f"dnssec-auditor: error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    click.echo(f"dnssec-auditor: outputs in {out_dir}/ ({len(outcome.files)} files)", err=True)
    sys.exit(EXIT_OK)
