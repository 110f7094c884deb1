"""Paths, defaults and environment variables: the one place the rest of `ml` asks where things are.

Standard library only, so Make can read a default before the virtualenv exists:
`python3 ml/config.py get seed` prints 42 (see the Makefile). The split shares are dbt's: their home
is `vars:` in dbt_project.yml and `ml` reads the values a build used from `dbt_build_info`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Defaults:
    """Every default shared by Make, dbt (through the SEED env var) and `ml`; env vars override."""

    seed: int = 42  # SEED: generator, dbt split (var split_seed), corpus shuffles, search draws
    host: str = "127.0.0.1"  # SERVE_HOST: endpoints bind to the loopback interface only
    port: int = 8080  # SERVE_PORT: the SageMaker container's port
    tf_version: str = "2.20"  # SAGEMAKER_TF_VERSION: the TF inference image the export targets
    check_playlists: int = 50  # playlists `ml check` / `ml deploy` send to a live endpoint


DEFAULTS = Defaults()


def _env_path(name: str, default: str) -> Path:
    value = os.environ.get(name) or default
    path = Path(value)
    return path if path.is_absolute() else (REPO_ROOT / path)


@dataclass(frozen=True)
class Paths:
    """Where the pipeline reads and writes. Built from env vars so Make, dbt and `ml` agree."""

    raw_csv: Path
    duckdb_path: Path
    models_dir: Path
    reports_dir: Path
    gx_dir: Path = field(default=REPO_ROOT / "gx")
    dbt_project_dir: Path = field(default=REPO_ROOT / "dbt_project")
    profiles_dir: Path = field(default=REPO_ROOT / "profiles")
    marts_dir: Path | None = None  # MARTS_DIR: a folder of Parquet marts (ml/marts_parquet.py)

    @property
    def marts(self) -> Path:
        """Where training reads the marts: the Parquet folder when MARTS_DIR is set, else the warehouse."""
        return self.marts_dir or self.duckdb_path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(
            raw_csv=_env_path("RAW_CSV", "data/raw/spotify_dataset.csv"),
            duckdb_path=_env_path("DUCKDB_PATH", "data/warehouse.duckdb"),
            models_dir=_env_path("MODELS_DIR", "models"),
            reports_dir=_env_path("REPORTS_DIR", "reports"),
            marts_dir=_env_path("MARTS_DIR", "") if os.environ.get("MARTS_DIR") else None,
        )


# The real file's header, byte for byte (note the space after each comma).
RAW_HEADER = '"user_id", "artistname", "trackname", "playlistname"'
RAW_COLUMNS = ("user_id", "artistname", "trackname", "playlistname")

# Playlist names the Spotify client creates by itself; they mix tastes.
AUTO_PLAYLIST_NAMES = ("Starred", "Liked from Radio")


@dataclass(frozen=True)
class ServeLimits:
    """Transport limits of `ml serve` (ml.serve_guard says what each one stops)."""

    max_connections: int = 256  # lowered at start to fit the descriptors left
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 5
    max_header_bytes: int = 16 * 1024  # request line + headers (ml.serve_guard refuses more: 431)
    backlog: int = 32  # listen() queue, and the most connections asyncio accepts in one loop turn


def main(argv: list[str]) -> int:
    """`python3 ml/config.py get NAME` prints one default (for Make); `list` prints them all."""
    values = asdict(DEFAULTS)
    if len(argv) == 2 and argv[0] == "get" and argv[1] in values:
        print(values[argv[1]])
        return 0
    if argv == ["list"]:
        print("\n".join(f"{k}={v}" for k, v in values.items()))
        return 0
    print(f"usage: config.py get {{{','.join(values)}}} | list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
