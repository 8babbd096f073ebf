"""``callcenter systemd-units --out DIR``: the systemd unit set for a host without Docker.

The units run the processes ``callcenter up`` runs (``callcenter.processes.PROCESSES``) with
the same commands, after a one-shot ``migrate``, under one ``callcenter.target``:

- ``Restart=always`` with ``StartLimitBurst=5`` in ``StartLimitIntervalSec=60``: like ``up``,
  a process that dies is restarted, and one that died 5 times within 60 s is left failed
  (``systemctl status`` says so) instead of restarting forever;
- ``KillMode=control-group``: stopping (or a dead main process) ends every process of the
  unit's cgroup, so the engine's slots and its Kamailio never outlive it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from callcenter.processes import ProcessSpec, up_processes

TARGET = "callcenter.target"
MIGRATE = "callcenter-migrate.service"


@dataclass(frozen=True)
class UnitOptions:
    user: str = "callcenter"
    env_file: str = "/etc/callcenter/callcenter.env"
    state_dir: str = "/var/lib/callcenter"
    python: str = sys.executable  # the interpreter (of the virtualenv) callcenter is installed in


def unit_name(spec: ProcessSpec) -> str:
    return f"callcenter-{spec.name}.service"


def _exec(options: UnitOptions, command: tuple[str, ...]) -> str:
    return " ".join([options.python, "-m", "callcenter.cli", *command])


def _service_common(options: UnitOptions) -> str:
    return (
        f"User={options.user}\n"
        f"WorkingDirectory={options.state_dir}\n"
        f"Environment=CALLCENTER_STATE_DIR={options.state_dir}\n"
        f"EnvironmentFile=-{options.env_file}\n"
    )


def render_units(options: UnitOptions, specs: list[ProcessSpec] | None = None) -> dict[str, str]:
    """File name -> contents of every unit."""
    chosen = up_processes() if specs is None else specs
    units: dict[str, str] = {}
    units[MIGRATE] = (
        "[Unit]\n"
        "Description=Call center: upgrade the database schema\n"
        "Wants=network-online.target\n"
        "After=network-online.target postgresql.service redis-server.service\n"
        f"PartOf={TARGET}\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart={_exec(options, ('migrate',))}\n" + _service_common(options)
    )
    for spec in chosen:
        units[unit_name(spec)] = (
            "[Unit]\n"
            f"Description=Call center: {spec.name} (callcenter {' '.join(spec.command)})\n"
            f"Requires={MIGRATE}\n"
            f"After={MIGRATE} network-online.target postgresql.service redis-server.service\n"
            f"PartOf={TARGET}\n"
            "StartLimitIntervalSec=60\n"
            "StartLimitBurst=5\n"
            "\n[Service]\n"
            "Type=simple\n"
            f"ExecStart={_exec(options, spec.command)}\n"
            "Restart=always\n"
            "RestartSec=1\n"
            "KillMode=control-group\n"
            "TimeoutStopSec=20\n" + _service_common(options) + f"\n[Install]\nWantedBy={TARGET}\n"
        )
    wants = " ".join([MIGRATE, *(unit_name(spec) for spec in chosen)])
    units[TARGET] = (
        "[Unit]\n"
        "Description=Call center (every process callcenter up runs)\n"
        f"Wants={wants}\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    return units


def write_units(out: Path, options: UnitOptions) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(options).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
