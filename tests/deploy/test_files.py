"""deploy/ describes what the multi-process tests run: the files stay consistent with the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from dragoman.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "DRAGOMAN_KEY": "key",
    "DRAGOMAN_ADMIN_KEY": "admin",
    "POSTGRES_PASSWORD": "pw",
}


def test_the_replicas_config_is_valid_and_shares_its_state() -> None:
    cfg = load_config(DEPLOY / "dragoman.yaml", env=ENV)
    assert cfg.store.url == "postgresql://dragoman:pw@postgres:5432/dragoman"
    assert cfg.store.auto_upgrade is False  # the migrate service does it, once
    assert cfg.state.url == "redis://redis:6379/0"
    assert cfg.cache is not None and cfg.cache.url == "redis://redis-cache:6379/0"


def test_compose_topology() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "redis-cache", "migrate", "gateway-1", "gateway-2", "lb"} <= set(
        services
    )
    for gw in ("gateway-1", "gateway-2"):
        assert (
            services[gw]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
        assert "./dragoman.yaml:/etc/dragoman/dragoman.yaml:ro" in services[gw]["volumes"]
    assert services["migrate"]["command"][:2] == ["db", "upgrade"]
    assert "noeviction" in services["redis"]["command"]
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert "server gw1 gateway-1:8080" in haproxy and "server gw2 gateway-2:8080" in haproxy


def test_the_image_runs_serve_as_a_user() -> None:
    docker = (DEPLOY / "Dockerfile").read_text()
    assert "\nUSER dragoman\n" in docker
    assert 'CMD ["serve", "--config", "/etc/dragoman/dragoman.yaml"' in docker
    assert docker.index("USER dragoman") < docker.index("CMD [")
