"""One typed settings object: environment variables (``CALLCENTER_*``) over a TOML file.

The TOML file is ``callcenter.toml`` in the working directory, or the path in
``CALLCENTER_SETTINGS_FILE``. Nested keys use ``__`` in the environment, e.g.
``CALLCENTER_SIP__EDGE_PORT=5070``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent / "defaults"
DEMO_SECRET = "change-me-demo-secret"


class EdgeTuning(BaseModel):
    """Timers and limits of the SIP edge (Kamailio); tests shorten them, never mock them."""

    # tm: no provisional reply within this time -> the slot is treated as dead, next slot.
    fr_timer_ms: int = Field(default=1000, ge=100)
    # tm: ringing time allowed for an agent's softphone (and a trunk) after a provisional reply.
    fr_inv_timer_ms: int = Field(default=60000, ge=1000)
    # dispatcher: OPTIONS probe interval; dead-slot detection = this + fr_timer.
    ping_interval_seconds: int = Field(default=1, ge=1)
    # dispatcher: minimum time between list reloads (dispatcher.add/remove reload the list).
    reload_delta_seconds: int = Field(default=1, ge=1)
    # ds_select_dst failover list size; after that the caller gets 486.
    max_slot_attempts: int = Field(default=4, ge=1, le=32)
    # pike: more than pike_max_requests per pike_window_seconds from one address is a flood.
    pike_window_seconds: int = Field(default=2, ge=1)
    pike_max_requests: int = Field(default=16, ge=2)
    # A flooding address stays banned this long (htable autoexpire), flood or not.
    ban_seconds: int = Field(default=600, ge=1)
    # Never banned besides trunks and slots: e.g. the agents' office NAT address (a room of
    # softphones re-registering after a power cut looks like a flood from one address).
    flood_exempt_addresses: list[str] = Field(default_factory=list)
    # registrar: longest registration accepted from a softphone.
    register_max_expires: int = Field(default=3600, ge=60)
    # usrloc's db_mode: 3 keeps registrations in Redis only (every edge of the center reaches a
    # phone registered at any of them, at once); 1 keeps them in memory, written through to
    # Redis and loaded at start (lookups without a Redis round trip; one edge only).
    usrloc_db_mode: Literal[1, 3] = 3
    # Kamailio worker processes per transport.
    children: int = Field(default=4, ge=1, le=64)
    # Kamailio log level (-1 error .. 3 debug); the log goes to <state_dir>/kamailio/kamailio.log.
    log_level: int = Field(default=1, ge=-5, le=4)
    # Body policy for requests from outside the slot set (pjsua2 2.15.1 must never parse
    # hostile SDP): largest body accepted, and the SDP's line count and line length limits.
    max_body_bytes: int = Field(default=8192, ge=1024, le=16384)
    max_sdp_lines: int = Field(default=64, ge=16, le=500)
    max_sdp_line_length: int = Field(default=256, ge=80, le=1000)
    # Password guessing: this many failed digest authentications from one address, each within
    # auth_fail_window_seconds of the previous one, ban the address for ban_seconds.
    auth_fail_limit: int = Field(default=5, ge=1)
    auth_fail_window_seconds: int = Field(default=60, ge=1)
    # Calls to the DIDs accepted only from trunk addresses (every trunk's host and
    # sip.trunk_addresses), when there are any; None: on in production, off otherwise.
    dids_from_trunks_only: bool | None = None
    # Requests whose User-Agent contains one of these (case-insensitive) are dropped unanswered.
    scanner_user_agents: list[str] = Field(
        default_factory=lambda: ["friendly-scanner", "sipvicious", "sipcli", "sip-scan", "iWar"]
    )


class MediaRelaySettings(BaseModel):
    """A media relay for softphones the slots cannot reach directly (NAT): Debian's rtpengine
    in userspace, driven by the edge's Kamailio (docs/edge.md "Media relay")."""

    # rtpengine's NG control socket, e.g. "udp:127.0.0.1:22222"; empty: no relay (default).
    rtpengine: str = ""
    # "nat": relay calls to softphones that registered from behind NAT (nathelper's tests);
    # "always": relay every call between a slot and a softphone.
    mode: Literal["nat", "always"] = "nat"
    # The address rtpengine puts in the SDP and receives RTP on (the one phones can reach);
    # empty: sip.edge_host.
    address: str = ""
    port_min: int = Field(default=35000, ge=1024, lt=65536)
    port_max: int = Field(default=39999, ge=1024, lt=65536)
    binary: str = "rtpengine"


class SipSettings(BaseModel):
    """The SIP edge (Kamailio) and the engine's slot processes behind it."""

    edge_host: str = "127.0.0.1"
    edge_port: int = 5060
    # Slots listen on loopback ports from slot_base_port upwards, one SIP port each.
    slot_host: str = "127.0.0.1"
    slot_base_port: int = 21000
    rtp_base_port: int = 30000
    rtp_ports_per_slot: int = 16
    lines: int = Field(default=90, ge=1, le=2000, description="simultaneous conversations")
    warm_spares: int = Field(default=4, ge=1)
    kamailio_binary: str = "kamailio"
    kamailio_ctl_socket: str = ""  # default: <state_dir>/kamailio/ctl.sock
    trunk_addresses: list[str] = Field(default_factory=list)
    max_call_seconds: int = 4 * 3600
    rtp_silence_timeout_seconds: int = 60
    # Who may send INVITEs to a slot ("ip" or "ip:port"); empty: only edge_host:edge_port.
    slot_allow_from: list[str] = Field(default_factory=list)
    # SIP over TLS at the edge (softphones outside the server's network): the port of a TLS
    # listener on edge_host, 0 for none. Certificate and key are PEM files; left empty, the
    # edge generates a self-signed certificate for edge_host under <state_dir>/kamailio/tls/
    # (refused in production, which must name real files).
    tls_port: int = Field(default=0, ge=0, lt=65536)
    tls_certificate: str = ""
    tls_private_key: str = ""
    edge: EdgeTuning = EdgeTuning()
    media_relay: MediaRelaySettings = MediaRelaySettings()


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # uvicorn worker processes of ``callcenter api``. Each builds its own context from these
    # settings; they share nothing but SQL and Redis (architecture.md), so any number works.
    # One process runs one request's Python at a time (the GIL): set about one per core that
    # the API may use, leaving room for the worker, router and engine on the same machine.
    workers: int = Field(default=1, ge=1, le=64)
    access_log: bool = True
    # Page sign-in cookies carry ``Secure`` when the request came over https (behind a proxy
    # passing X-Forwarded-Proto from a trusted address) or always when this is set.
    secure_cookies: bool = False


class SignInSettings(BaseModel):
    """Throttling of password sign-ins (token, HTTP Basic, the login page); docs/security.md.

    Failures are counted in Redis in a fixed window that starts with the first failure. Over
    either limit, sign-ins answer 429 with Retry-After until the window ends, the right
    password included."""

    max_failures_per_account: int = Field(default=5, ge=1)
    max_failures_per_address: int = Field(default=20, ge=1)
    window_seconds: int = Field(default=300, ge=1)


class RecordingStorageSettings(BaseModel):
    """Where finished recordings are kept (docs/recordings.md): the local recordings directory,
    or a bucket of an S3-compatible object store (production, several engine nodes)."""

    backend: Literal["local", "s3"] = "local"
    endpoint_url: str = ""  # empty: AWS itself; e.g. http://minio:9000 for a local store
    bucket: str = "recordings"
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""
    # a replay link (POST /api/v1/recordings/{id}/link) is valid this long
    link_ttl_seconds: int = Field(default=300, ge=10, le=86400)


class Settings(BaseSettings):
    """Everything a process needs to know about where things are."""

    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = ""  # default: sqlite file under state_dir
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Key prefix for everything this deployment keeps in Redis (several centers may share one).
    redis_prefix: str = "cc"
    # Redis's append-only file, so the routing state (queued calls, agents' states, offers in
    # flight, timers, stream groups) survives a Redis restart: ``callcenter migrate`` and
    # ``up`` turn it on (CONFIG SET appendonly yes, and CONFIG REWRITE into Redis's own
    # configuration file) when it is off. None: on in production, Redis left alone otherwise.
    redis_aof: bool | None = None
    state_dir: Path = Path("var")
    recordings_dir: Path = Path("")  # default: <state_dir>/recordings
    config_dir: Path = DEFAULT_CONFIG_DIR
    secret_key: str = DEMO_SECRET
    token_ttl_seconds: int = 12 * 3600
    language: Literal["zh-CN", "en"] = "zh-CN"
    timezone: str = "Asia/Shanghai"
    node_id: str = "node1"
    # CTI: the screen-pop payload is also POSTed here on every offer when set (docs/cti.md).
    screen_pop_webhook_url: str = ""
    http: HttpSettings = HttpSettings()
    sip: SipSettings = SipSettings()
    signin: SignInSettings = SignInSettings()
    recording_storage: RecordingStorageSettings = RecordingStorageSettings()

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.state_dir / 'callcenter.db').resolve()}"
        if self.recordings_dir == Path(""):
            self.recordings_dir = self.state_dir / "recordings"
        if not self.sip.kamailio_ctl_socket:
            self.sip.kamailio_ctl_socket = str((self.state_dir / "kamailio" / "ctl.sock").resolve())
        if self.environment == "production" and self.secret_key == DEMO_SECRET:
            raise ValueError(
                "secret_key: the demo secret is refused in production; "
                "set CALLCENTER_SECRET_KEY to a long random value"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("CALLCENTER_SETTINGS_FILE", "callcenter.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment and the TOML file; keyword overrides win."""
    return Settings(**overrides)
