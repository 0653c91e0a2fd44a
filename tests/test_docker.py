"""docker/: no Docker engine here, so the files are checked statically (compose spec schema, Dockerfile)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from digest.config import validate

DOCKER = Path(__file__).resolve().parents[1] / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text("utf-8"))
DOCKERFILE = (DOCKER / "Dockerfile").read_text("utf-8")


def instructions(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.+)$", DOCKERFILE, re.M)


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate against the compose-spec schema vendored in check-jsonschema (no network)."""
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if tool is None:
        pytest.fail("check-jsonschema is not installed: pip install -e '.[test]'")
    return subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True)


def test_compose_file_matches_the_compose_specification() -> None:
    result = check_compose(DOCKER / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_compose_file(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["web"]["ports"] = "8080"  # must be a list
    broken["services"]["web"]["restart_policy"] = "always"  # no such key
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken), "utf-8")
    result = check_compose(path)
    assert result.returncode == 1, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("service", "command"),
    [("digest", ["digest", "schedule"]), ("web", ["digest", "serve"]), ("first-issue", ["digest", "run"])],
)
def test_compose_services_run_the_digest_commands(service: str, command: list[str]) -> None:
    spec = COMPOSE["services"][service]
    assert spec["command"] == command
    assert spec["build"]["dockerfile"] == "docker/Dockerfile"
    mounts = [v.split(":")[1] for v in spec["volumes"]]
    assert {"/data/state", "/data/output", "/config/digest.toml", "/config/subscribers.yaml", "/site"} <= set(mounts)
    assert set(spec["environment"]) == {"DIGEST_SECRET", "DIGEST_SMTP_PASSWORD"}


def test_compose_publishes_web_and_mailpit_ports() -> None:
    services = COMPOSE["services"]
    assert services["web"]["ports"] == ["8080:8080"]
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert {"1025:1025", "8025:8025"} <= set(services["mailpit"]["ports"])


def test_dockerfile_runs_as_an_unprivileged_user_with_the_schedule_default() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER") > DOCKERFILE.index("pip install")
    assert json.loads(instructions("CMD")[-1]) == ["digest", "schedule"]
    volumes = json.loads(instructions("VOLUME")[-1])
    assert volumes == ["/data/state", "/data/output"]


def test_no_secret_is_baked_into_the_image_or_the_config() -> None:
    assert not re.search(r"^(ENV|ARG)\s.*(SECRET|PASSWORD)", DOCKERFILE, re.M)
    config = tomllib.loads((DOCKER / "digest.toml").read_text("utf-8"))
    assert "password" not in config.get("smtp", {})


def test_container_config_is_valid_and_points_at_mailpit() -> None:
    text = (DOCKER / "digest.toml").read_text("utf-8")
    values = validate(tomllib.loads(text), source="docker/digest.toml", text=text)
    assert values["smtp"]["host"] == "mailpit" and values["smtp"]["port"] == 1025
    assert values["smtp"]["mode"] == "plain" and values["smtp"]["allow_plain"] is True
    assert values["server"]["host"] == "0.0.0.0" and values["server"]["port"] == 8080
    assert values["state"]["dir"] == "/data/state" and values["output"]["dir"] == "/data/output"


def test_compose_mounts_the_config_the_image_reads() -> None:
    mounted = {v.split(":")[0]: v.split(":")[1] for v in COMPOSE["services"]["digest"]["volumes"]}
    assert mounted["./digest.toml"] == "/config/digest.toml"
    assert instructions("WORKDIR")[-1] == "/config"  # digest.toml is found in the working directory
    for host_path in mounted:
        if host_path.startswith("."):
            assert (DOCKER / host_path).exists(), host_path
