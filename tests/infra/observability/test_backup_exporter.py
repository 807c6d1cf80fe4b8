"""The backup-freshness sidecar: restricted, read-only mounts, and shipped in the pghoard image."""

from __future__ import annotations

import re

import pytest

from infra.observability import backup_exporter as be
from infra.validation import ArgsError
from tests.infra.observability.pods import pod_manifest, validate
from tests.infra.test_pghoard_scripts import REPO

IMAGE = "europe-docker.pkg.dev/p/ha-celery/pghoard@sha256:" + "ab" * 32


def test_sidecar_passes_schema_pod_security_restricted_and_resource_rules():
    container = be.backup_exporter_container(be.BackupExporterArgs(image=IMAGE))
    assert validate(pod_manifest(container, uid=999, volumes=["config", "work"])) == []


def test_sidecar_reads_pghoards_config_and_alert_files_read_only():
    container = be.backup_exporter_container(be.BackupExporterArgs(image=IMAGE))
    assert container.command == [
        "/opt/pghoard/bin/backup_metrics.py", "--config", "/etc/pghoard/pghoard.json",
        "--port", "9188"]
    assert {(m.name, m.mount_path, m.read_only) for m in container.volume_mounts} == {
        ("config", "/etc/pghoard", True), ("work", "/var/lib/pghoard", True)}
    assert [(p.name, p.container_port) for p in container.ports] == [("metrics", 9188)]


def test_the_pghoard_image_ships_the_exporter_as_an_executable_beside_check_backup():
    dockerfile = (REPO / "pghoard" / "Dockerfile").read_text()
    copy = re.search(r"^COPY (.*) /opt/pghoard/bin/$", dockerfile, re.MULTILINE)
    assert copy is not None and "backup_metrics.py" in copy.group(1).split()
    assert "check_backup.py" in copy.group(1).split()
    assert re.search(r"chmod 0555 [^&]*backup_metrics\.py", dockerfile, re.DOTALL)


@pytest.mark.parametrize("port", [80, 16000, "9188"])
def test_bad_port_names_the_field_and_the_fix(port):
    with pytest.raises(ArgsError) as raised:
        be.BackupExporterArgs(image=IMAGE, port=port)
    assert raised.value.field == "BackupExporterArgs.port"
    assert "other than pghoard's API (16000)" in str(raised.value)
