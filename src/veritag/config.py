"""Settings, each declared once with its default and the reason it exists."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

__all__ = ["DEFAULT_DATABASE", "Settings", "database_url_for", "load_settings"]

DEFAULT_DATABASE = "veritag.db"


class Settings(BaseSettings):
    """veritag's settings, read from ``VERITAG_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="VERITAG_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store (sqlite:///path.db or postgresql+psycopg://...). "
        "Overrides the default file ./veritag.db; --db on the command line overrides this.",
    )
    import_batch_rows: int = Field(
        default=5000,
        ge=1,
        description="Rows written per database round trip while importing; bounds memory.",
    )
    orphan_lease_seconds: float = Field(
        default=120,
        ge=0,
        description="When a server process starts, leases handed out by a process of the same "
        "host that died expire within this many seconds instead of their full lease time; a tutor "
        "still working asks again meanwhile and gets the lease back.",
    )
    embedded_worker: bool = Field(
        default=True,
        description="Whether `veritag serve` runs one job worker thread in each server process "
        "(one command to run everything). Set false when separate `veritag worker` processes "
        "run the jobs: the server then only queues them.",
    )
    job_heartbeat_timeout: float = Field(
        default=60,
        gt=0,
        description="Seconds without a heartbeat (a running worker sends one every few seconds) "
        "after which a job's worker counts as dead and another worker takes the job again, up to "
        "its attempts. Keep it well above clock differences between worker hosts.",
    )


def load_settings() -> Settings:
    """Read the settings, turning a bad ``VERITAG_*`` value into a one-line ``ConfigError``."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"VERITAG_{str(e['loc'][0]).upper()}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid setting: {problems}") from None


def database_url_for(db: str | None, settings: Settings | None = None) -> str:
    """Turn a ``--db`` value (a path or a URL) into a SQLAlchemy URL.

    Precedence: an explicit ``db``, then ``VERITAG_DATABASE_URL``, then ./veritag.db.
    """
    settings = settings or load_settings()
    value = db or settings.database_url or DEFAULT_DATABASE
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"
