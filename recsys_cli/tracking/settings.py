"""What conf/logger/ asks for, read without importing MLflow: `recsys train`
without a logger never loads it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MLFLOW = "mlflow"
SQLITE = "sqlite:///"
# Where a new experiment in a local SQLite store keeps its artifacts: beside the
# database (as `mlflow server` does by default), not in whatever folder a command ran.
ARTIFACTS = "mlartifacts"


@dataclass(frozen=True)
class Settings:
    tracking_uri: str  # local paths made absolute: sweep workers and refits find the same store
    experiment_name: str
    run_name: str | None = None
    artifact_location: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(
            tracking_uri=str(data["tracking_uri"]),
            experiment_name=str(data["experiment_name"]),
            run_name=data.get("run_name"),
            artifact_location=data.get("artifact_location"),
        )


def settings(cfg: DictConfig) -> Settings | None:
    """The tracker a composed train (or sweep) config asks for; None for `logger=none`
    and for configs from before conf/logger/ (a run folder's config.yaml)."""
    node = cfg.get("logger")
    if node is None or node.get("name", "none") != MLFLOW:
        return None
    plain = OmegaConf.to_container(node, resolve=True)
    assert isinstance(plain, dict)
    uri = absolute_uri(str(plain["tracking_uri"]))
    location = plain.get("artifact_location")
    return Settings(
        tracking_uri=uri,
        experiment_name=str(plain["experiment_name"]),
        run_name=str(plain["run_name"]) if plain.get("run_name") else None,
        artifact_location=_local(str(location)) if location else default_artifacts(uri),
    )


def absolute_uri(uri: str) -> str:
    """`sqlite:///mlflow.db` (relative to the working directory) as an absolute
    `sqlite:////.../mlflow.db`; other URIs as given."""
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    _, sep, query = uri[len(SQLITE) :].partition("?")
    return f"{SQLITE}{path.resolve()}{sep}{query}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local `sqlite:///` URI (None for other URIs and `:memory:`)."""
    if not uri.startswith(SQLITE):
        return None
    path = uri[len(SQLITE) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def default_artifacts(uri: str) -> str | None:
    path = sqlite_path(uri)
    return str(path.parent / ARTIFACTS) if path is not None else None


def _local(location: str) -> str:
    """A relative artifact folder resolved against the working directory, like runs/;
    URIs (s3://, file:, mlflow-artifacts:) as given."""
    return location if ":" in location else str(Path(location).resolve())
