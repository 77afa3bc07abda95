"""One settings object for every stage, read from the environment (and `.env`).

Variable names follow the seed README so that existing ConfigMaps and `.env` files keep working.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ModelStage = Literal["Staging", "Production"]
ModelSource = Literal["mlflow", "local"]
ModelKind = Literal[
    "compact_logistic", "logistic_regression", "random_forest", "hist_gradient_boosting", "auto"
]

STAGE_TO_ALIAS: dict[str, str] = {"Staging": "staging", "Production": "production"}
TEAM_NAME_CHARS = 100  # the author column of the follow-up records
DEFAULT_FOLLOWUP_TYPES = (
    "acompanhamento psicológico",
    "reforço escolar",
    "mentoria",
    "conversa com a família",
    "outro",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    # MLflow tracking and registry. Unset URI = embedded local store under DATA_DIR.
    MLFLOW_ENABLED: bool = True
    MLFLOW_TRACKING_URI: str | None = None
    MLFLOW_TRACKING_USERNAME: str | None = None
    MLFLOW_TRACKING_PASSWORD: SecretStr | None = None
    MLFLOW_EXPERIMENT_NAME: str = "passos-magicos-ponto-virada"
    MLFLOW_MODEL_NAME: str = "passos-magicos-ponto-virada"
    MLFLOW_MODEL_STAGE: ModelStage = "Production"

    # Serving (used by the API issue; declared here so there is one settings object).
    MODEL_SOURCE: ModelSource = "mlflow"
    MODEL_FALLBACK_LOCAL: bool = True
    ADMIN_RELOAD_TOKEN: SecretStr | None = None
    API_HOST: str = "127.0.0.1"
    API_PORT: int = Field(default=8000, ge=1, le=65535)
    API_WORKERS: int = Field(default=1, ge=1, le=16)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Prediction endpoints expose data about minors: without tokens they refuse (fail-closed).
    API_TOKENS: SecretStr | None = None  # comma-separated
    CORS_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    MAX_BODY_BYTES: int = Field(default=2_000_000, ge=1024)
    BATCH_LIMIT: int = Field(default=1000, ge=1)
    ALUNOS_LIMIT: int = Field(default=200, ge=1)
    # Every worker checks the alias (or the local copy) this often and loads a new version by
    # itself: a promotion reaches every replica within this bound plus the load (README). 0 = off.
    MODEL_POLL_SECONDS: float = Field(default=30.0, ge=0)
    MODEL_RETRY_SECONDS: float = Field(default=10.0, gt=0)

    # Feature store: offline Parquet, online SQL (SQLite by default, PostgreSQL in production).
    ONLINE_STORE_URL: str | None = None
    FEATURE_REFRESH_SECONDS: float = Field(default=5.0, gt=0)

    # Prediction log, shared by every replica (a PVC in Kubernetes).
    PREDICTION_LOG_PATH: Path = Path("logs/predictions.jsonl")
    PREDICTION_LOG_MAX_BYTES: int = Field(default=100_000_000, ge=10_000)
    PREDICTION_LOG_DAILY: bool = True  # also rotate when the day changes
    # Monitoring runs and alert history (written by the monitoring job, read by the API).
    MONITORING_STORE_URL: str | None = None

    # Follow-up records (acompanhamentos) of the pedagogic team: their own tables (Alembic
    # migrations) in this database; unset = the monitoring store's database.
    FOLLOWUPS_STORE_URL: str | None = None
    # The team's write role: "nome:token,nome:token" (the name is stored as the author). Unset =
    # follow-ups read-only (fail-closed). Distinct from API_TOKENS and ADMIN_RELOAD_TOKEN.
    TEAM_TOKENS: SecretStr | None = None
    FOLLOWUP_TYPES: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_FOLLOWUP_TYPES)
    )
    # Free-text notes could hold sensitive details about a minor: off unless allowed here.
    FOLLOWUP_NOTES_ENABLED: bool = False

    # Monitoring job: drift of the last PERFORMANCE_WINDOW predictions against the reference
    # profile of the model version that made them.
    DRIFT_THRESHOLD: float = Field(default=0.2, gt=0)  # PSI
    PERFORMANCE_WINDOW: int = Field(default=1000, ge=1)
    MONITOR_MIN_SAMPLES: int = Field(default=200, ge=10)  # below: "dados insuficientes"
    MONITOR_ALPHA: float = Field(default=0.01, gt=0, lt=1)  # family-wise, per model version
    MONITOR_REPORT_DIR: Path = Path("logs/monitoring")
    # Realised performance (`passos-magicos evaluate`, once cycle t+1 outcomes arrive): alert
    # when the ROC-AUC of a version's predictions for cycle t falls below this floor.
    REALISED_MIN_ROC_AUC: float = Field(default=0.70, ge=0.0, le=1.0)
    # The API the job (class distribution via /metrics) and the dashboard talk to.
    API_URL: str = "http://127.0.0.1:8000"
    API_TOKEN: SecretStr | None = None  # client token; default: the first of API_TOKENS
    DASHBOARD_URL: str | None = "http://localhost:8501"  # linked from Slack alerts
    DASHBOARD_HOST: str = "127.0.0.1"
    DASHBOARD_PORT: int = Field(default=8501, ge=1, le=65535)
    DASHBOARD_API_TIMEOUT: float = Field(default=15.0, gt=0)  # then: "a API demorou…" and retry
    # One of TEAM_TOKENS' tokens: the dashboard's follow-up form writes with it (its name is the
    # author); unset = the form says writing is disabled.
    DASHBOARD_TEAM_TOKEN: SecretStr | None = None

    # Slack alerts.
    SLACK_WEBHOOK_URL: SecretStr | None = None
    SLACK_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    SLACK_MAX_ATTEMPTS: int = Field(default=4, ge=1, le=10)  # retries on 429, 5xx, timeouts
    SLACK_BACKOFF_SECONDS: float = Field(default=1.0, ge=0)  # doubles per attempt
    ALERT_COOLDOWN_MINUTES: float = Field(default=720, ge=0)  # same alert not repeated sooner

    # Data and local artefacts.
    PEDE_DATA_PATH: str | None = None  # default training data (path or s3:// URI); None = synthetic
    # Cycles without official PV (2023, 2024) get labels derived by the IPV rule, marked
    # `derivado`; false = only official labels (as before the rule).
    PV_DERIVED_LABELS: bool = True
    DATA_DIR: Path = Path("data")
    MODELS_DIR: Path = Path("models")

    # Training and quality gate.
    TRAIN_MODEL: ModelKind = "auto"  # chosen on past cycles only (rolling origin); see README
    RANDOM_SEED: int = 42
    CV_FOLDS: int = Field(default=5, ge=2, le=20)
    LEAKAGE_AUC_LIMIT: float = Field(default=0.98, gt=0.5, le=1.0)
    # Floor on the newest backtest year's ROC-AUC (guards against a broken model; the paired
    # comparison with INDE_t alone guards against a useless one).
    GATE_MIN_ROC_AUC: float = Field(default=0.70, ge=0.0, le=1.0)
    GATE_TOLERANCE: float = Field(default=0.02, ge=0.0, le=1.0)
    # A fairness gap flagged on the newest backtest year (training/fairness.py): `warn` adds a
    # warning to the gate's verdict, `block` fails it.
    FAIRNESS_GATE: Literal["warn", "block"] = "warn"
    SYNTH_STUDENTS: int = Field(default=1400, ge=50)
    # Backtest: bootstrap replicates behind every interval (paired for model − baseline).
    BACKTEST_REPLICATES: int = Field(default=1000, ge=100, le=20000)

    @field_validator(
        "MLFLOW_TRACKING_URI",
        "PEDE_DATA_PATH",
        "ONLINE_STORE_URL",
        "MONITORING_STORE_URL",
        "FOLLOWUPS_STORE_URL",
        "DASHBOARD_URL",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # ConfigMaps and `.env` files often carry `KEY=`; treat it as "not set".
        return None if value == "" else value

    @field_validator("CORS_ORIGINS", "FOLLOWUP_TYPES", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("FOLLOWUP_TYPES")
    @classmethod
    def _some_followup_type(cls, value: list[str]) -> list[str]:
        types = list(dict.fromkeys(v.strip() for v in value if v.strip()))
        if not types or any(len(v) > 60 for v in types):
            raise ValueError("FOLLOWUP_TYPES: ao menos um tipo, cada um com até 60 caracteres")
        return types

    @property
    def api_tokens(self) -> list[str]:
        raw = self.API_TOKENS.get_secret_value() if self.API_TOKENS else ""
        return [token.strip() for token in raw.split(",") if token.strip()]

    @property
    def api_client_token(self) -> str | None:
        """The token the job and the dashboard send to the API."""
        if self.API_TOKEN is not None and self.API_TOKEN.get_secret_value():
            return self.API_TOKEN.get_secret_value()
        tokens = self.api_tokens
        return tokens[0] if tokens else None

    @property
    def team_tokens(self) -> list[tuple[str, str]]:
        """(name, token) pairs of TEAM_TOKENS; malformed entries (no name or no token) grant
        nothing and are left out (see `team_token_problems`)."""
        raw = self.TEAM_TOKENS.get_secret_value() if self.TEAM_TOKENS else ""
        pairs = []
        for entry in raw.split(","):
            name, _, token = entry.partition(":")
            if name.strip() and token.strip() and len(name.strip()) <= TEAM_NAME_CHARS:
                pairs.append((name.strip(), token.strip()))
        return pairs

    @property
    def team_token_problems(self) -> list[str]:
        """What is wrong with TEAM_TOKENS, by position only (never echoing a secret)."""
        raw = self.TEAM_TOKENS.get_secret_value() if self.TEAM_TOKENS else ""
        entries = [e for e in raw.split(",") if e.strip()]
        problems = []
        for position, entry in enumerate(entries, start=1):
            name, _, token = entry.partition(":")
            if not (name.strip() and token.strip()):
                problems.append(f"entrada {position} de TEAM_TOKENS ignorada: use nome:token")
            elif len(name.strip()) > TEAM_NAME_CHARS:
                problems.append(
                    f"entrada {position} de TEAM_TOKENS ignorada: nome com mais de "
                    f"{TEAM_NAME_CHARS} caracteres"
                )
        return problems

    @property
    def dashboard_team_token(self) -> str | None:
        if self.DASHBOARD_TEAM_TOKEN is None:
            return None
        return self.DASHBOARD_TEAM_TOKEN.get_secret_value().strip() or None

    @property
    def followups_store_url(self) -> str:
        return self.FOLLOWUPS_STORE_URL or self.monitoring_store_url

    @property
    def online_store_url(self) -> str:
        return self.ONLINE_STORE_URL or (
            f"sqlite:///{(self.DATA_DIR / 'feature_store' / 'online.db').resolve()}"
        )

    @property
    def monitoring_store_url(self) -> str:
        default = (self.PREDICTION_LOG_PATH.parent / "monitoring.db").resolve()
        return self.MONITORING_STORE_URL or f"sqlite:///{default}"

    @property
    def reload_marker_path(self) -> Path:
        """Beside the prediction log (a volume every worker and replica shares and can write):
        rewritten by each POST /admin/reload-model, watched by every worker."""
        log = self.PREDICTION_LOG_PATH
        return log.with_name(f".{log.stem}-recarga.json")

    @property
    def offline_store_dir(self) -> Path:
        return self.DATA_DIR / "feature_store" / "offline"

    @property
    def model_alias(self) -> str:
        """The registry alias that MLFLOW_MODEL_STAGE stands for (aliases, not stages)."""
        return STAGE_TO_ALIAS[self.MLFLOW_MODEL_STAGE]

    @property
    def local_tracking_uri(self) -> str:
        return f"sqlite:///{(self.DATA_DIR / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def local_artifact_root(self) -> Path:
        return (self.DATA_DIR / "mlflow" / "artifacts").resolve()

    @property
    def tracking_uri(self) -> str:
        return self.MLFLOW_TRACKING_URI or self.local_tracking_uri

    @property
    def local_model_dir(self) -> Path:
        """Where the last model that passed the gate is exported (MODEL_SOURCE=local / fallback)."""
        return self.MODELS_DIR / "ponto-virada"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
