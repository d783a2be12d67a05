"""``--jobs 0`` (every core): the CPU affinity, lowered to the control group's CPU quota
(``scale.cores.default_jobs``), read from cgroup v2 and v1 files laid out as the kernel does;
for a file audit, one process when the input is small (``default_file_jobs``)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.scale import cores
from auditor.scale.cores import cgroup_cpu_quota, default_jobs

CORES = len(os.sched_getaffinity(0))


def _layout(root: Path, files: dict[str, str], membership: str) -> tuple[Path, Path]:
    for name, text in files.items():
        path = root / "cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    root.mkdir(parents=True, exist_ok=True)
    (root / "self-cgroup").write_text(membership)
    return root / "cgroup", root / "self-cgroup"


@pytest.mark.parametrize(("files", "membership", "quota"), [
    ({"cpu.max": "200000 100000"}, "0::/\n", 2.0),  # a container's own group (v2)
    ({"cpu.max": "max 100000"}, "0::/\n", None),
    ({"system.slice/tap.service/cpu.max": "150000 100000", "cpu.max": "max 100000"},
     "0::/system.slice/tap.service\n", 1.5),  # a systemd unit's CPUQuota=150%
    ({"cpu,cpuacct/cpu.cfs_quota_us": "50000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
     "4:cpu,cpuacct:/\n3:memory:/\n", 0.5),  # v1, docker --cpus=0.5
    ({"cpu/docker/abc/cpu.cfs_quota_us": "300000", "cpu/docker/abc/cpu.cfs_period_us": "100000"},
     "4:cpuacct,cpu:/docker/abc\n", 3.0),
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "4:cpu:/\n", None),
    ({"cpu.max": "a lot"}, "0::/\n", None),
    ({}, "", None),  # no cgroup files at all (not Linux, or not mounted)
])
def test_the_quota_is_read_where_the_kernel_puts_it(
        tmp_path: Path, files: dict[str, str], membership: str, quota: float | None) -> None:
    cgroups, self_cgroup = _layout(tmp_path, files, membership)
    assert cgroup_cpu_quota(cgroups, self_cgroup) == quota


def test_a_quota_lowers_the_default_never_raises_it(tmp_path: Path) -> None:
    half, self_cgroup = _layout(tmp_path / "half", {"cpu.max": "50000 100000"}, "0::/\n")
    assert default_jobs(half, self_cgroup) == 1  # half a core: one process
    many, self_cgroup = _layout(tmp_path / "many", {"cpu.max": "6400000 100000"}, "0::/\n")
    assert default_jobs(many, self_cgroup) == CORES  # 64 CPUs' worth: the affinity decides
    none, self_cgroup = _layout(tmp_path / "none", {}, "")
    assert default_jobs(none, self_cgroup) == CORES


# --- audit --jobs 0: one process for a small input -----------------------------------------


def test_small_local_captures_are_audited_in_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "SMALL_INPUT_BYTES", 100)
    monkeypatch.setattr(cores, "default_jobs", lambda: 7)
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    first.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(45))
    second.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(45))
    assert cores.default_file_jobs([str(first)]) == 1
    assert cores.default_file_jobs([str(first), str(second)]) == 1  # 98 bytes in all
    second.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(47))
    assert cores.default_file_jobs([str(first), str(second)]) == 7  # 100: every core


@pytest.mark.parametrize("name", ["gzip", "missing", "url", "stdin"])
def test_captures_whose_size_is_not_known_count_as_large(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(cores, "default_jobs", lambda: 7)
    small = tmp_path / "small.pcap.gz"
    small.write_bytes(gzip.compress(b"\xd4\xc3\xb2\xa1" + bytes(20)))  # size on disk: meaningless
    capture = {"gzip": str(small), "missing": str(tmp_path / "nothing.pcap"),
               "url": "s3://bucket/x.pcap", "stdin": "-"}[name]
    assert cores.default_file_jobs([capture]) == 7


def test_the_command_line_audits_the_sample_in_one_process_by_default(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"
    result = CliRunner().invoke(cli, ["audit", str(sample), "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "processes" not in json.loads((tmp_path / "stats.json").read_text())
