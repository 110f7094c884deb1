"""One home per default: ml/config.py's DEFAULTS, read by Make, dbt (SEED) and the deploy settings."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from ml.config import DEFAULTS, REPO_ROOT
from ml.deploy.config import DeployConfig


def test_config_prints_defaults_with_the_standard_library_only() -> None:
    # -I -S: no site-packages, no user paths; ml/config.py must run as a plain script (Make uses it).
    out = subprocess.run(
        [sys.executable, "-I", "-S", str(REPO_ROOT / "ml" / "config.py"), "get", "seed"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(DEFAULTS.seed)
    bad = subprocess.run(
        [sys.executable, "-I", "-S", str(REPO_ROOT / "ml" / "config.py"), "get", "nope"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_make_takes_the_seed_from_ml_config_unless_given() -> None:
    def make_seed(env: dict[str, str]) -> str:
        db = subprocess.run(
            ["make", "-pn", "help"], cwd=REPO_ROOT, capture_output=True, text=True, env=env, check=True
        ).stdout
        return re.search(r"^SEED :?= ?(.*)$", db, re.MULTILINE).group(1).strip()

    base = {"PATH": "/usr/bin:/bin:/usr/local/bin"}
    assert make_seed(base) == str(DEFAULTS.seed)
    assert make_seed({**base, "SEED": "7"}) == "7"


def test_dbt_falls_back_to_the_same_seed() -> None:
    """dbt cannot read Python: its fallback for a bare `dbt build` (no SEED env) must match."""
    doc = yaml.safe_load((REPO_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    assert doc["vars"]["split_seed"] == f"{{{{ env_var('SEED', '{DEFAULTS.seed}') }}}}"


def test_deploy_settings_default_to_ml_config(tmp_path, monkeypatch) -> None:
    for name in ("SERVE_HOST", "SERVE_PORT", "SAGEMAKER_TF_VERSION"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "deploy.yml"
    empty.write_text("local: {}\n")
    cfg = DeployConfig.load(empty)
    assert (cfg.local.host, cfg.local.port) == (DEFAULTS.host, DEFAULTS.port)
    assert cfg.sagemaker.tf_version == DEFAULTS.tf_version
    assert cfg.check_playlists == DEFAULTS.check_playlists
    monkeypatch.setenv("SERVE_PORT", "9123")
    assert DeployConfig.load(empty).local.port == 9123
