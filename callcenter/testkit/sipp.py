"""The one way tests and benchmarks run SIPp: to the end (a :class:`SippResult`) or in the
background (a :class:`SippProcess`, stopped by :func:`stop` or :func:`kill_started`).

Every SIPp runs non-interactive in a work directory that receives its screen output
(``sipp-N.out``: a pipe nobody reads would fill and block SIPp) and its errors file
(``sipp-N.errors``), with a control port of its own from ``CONTROL_PORTS`` (SIPp's default,
8888, is taken by whichever SIPp started first).
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter.testkit.scenarios import scenario as scenario_file

SIP_DOMAIN = "callcenter.local"
# No test binds a SIP or RTP port here (the edge tests use 15060-15603, the engine 16000 up).
CONTROL_PORTS = range(15700, 16000)
_control_ports = itertools.cycle(CONTROL_PORTS)
_runs = itertools.count()


def control_port() -> int:
    """The next SIPp control port (UDP) no other process holds."""
    for _ in CONTROL_PORTS:
        port = next(_control_ports)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free SIPp control port in {CONTROL_PORTS}")


@dataclass(frozen=True)
class SippResult:
    returncode: int
    errors: str  # SIPp's errors file (-trace_err)
    output: str  # the end of its screen output (statistics, the failed message)

    def ok(self) -> bool:
        return self.returncode == 0

    def failure(self) -> str:
        return f"SIPp exit {self.returncode}\n{self.output}\n{self.errors}"[-3000:]


class SippProcess(subprocess.Popen[bytes]):
    """A SIPp running in the background; its output and errors files are kept."""

    output_file: Path
    errors_file: Path
    log_file: Path | None

    def result(self, timeout: float | None = 60) -> SippResult:
        """Wait for the end (``subprocess.TimeoutExpired`` after ``timeout`` s)."""
        code = self.wait(timeout)
        return SippResult(code, _tail(self.errors_file), _tail(self.output_file))


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def command(
    scenario: Path,
    local: str,
    *args: str,
    target: str = "",
    media_port: int | None = None,
    calls: int | None = None,
    rate: float | None = None,
    limit: int | None = None,
    timeout_s: float | None = None,
    timeout_error: bool = False,
    errors_file: Path | None = None,
    log_file: Path | None = None,
) -> list[str]:
    """SIPp's argv: ``scenario`` from ``local`` (``ip:port``) to ``target`` (``host:port``;
    none for a UAS); ``args``: any other SIPp options (``-s 4008001234``, ``-key ...``)."""
    host, port = local.rsplit(":", 1)
    argv = ["sipp", "-sf", str(scenario), "-i", host, "-p", port, "-cp", str(control_port()),
            "-nostdin", "-trace_err"]  # fmt: skip
    if errors_file is not None:
        argv += ["-error_file", str(errors_file)]
    if log_file is not None:
        argv += ["-trace_logs", "-log_file", str(log_file)]
    if media_port is not None:
        argv += ["-mi", host, "-mp", str(media_port)]
    if calls is not None:
        argv += ["-m", str(calls)]
    if rate is not None:
        argv += ["-r", str(rate)]
    if limit is not None:
        argv += ["-l", str(limit)]
    if timeout_s is not None:
        argv += ["-timeout", f"{int(timeout_s)}s"]
    if timeout_error:
        argv.append("-timeout_error")
    argv += list(args)
    if target:
        argv.append(target)
    return argv


STARTED: list[subprocess.Popen[bytes]] = []


def start(
    scenario: Path, local: str, *args: str, workdir: Path, log: bool = False, **options: Any
) -> SippProcess:
    """SIPp in the background (``options``: those of :func:`command`); with ``log`` its
    ``<log>`` actions go to :attr:`SippProcess.log_file`. Remembered for :func:`kill_started`."""
    n = next(_runs)
    name = f"sipp-{local.replace(':', '_')}-{n}"
    errors = workdir / f"{name}.errors"
    log_file = workdir / f"{name}.log" if log else None
    argv = command(scenario, local, *args, errors_file=errors, log_file=log_file, **options)
    output = workdir / f"{name}.out"
    with output.open("wb") as out:
        process = SippProcess(argv, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, cwd=workdir)  # fmt: skip
    process.output_file, process.errors_file, process.log_file = output, errors, log_file
    STARTED.append(process)
    return process


def run(
    scenario: Path, local: str, *args: str, workdir: Path, timeout: float = 60, **options: Any
) -> SippResult:
    """SIPp to the end (killed after ``timeout`` s: ``subprocess.TimeoutExpired``)."""
    process = start(scenario, local, *args, workdir=workdir, **options)
    try:
        return process.result(timeout)
    except subprocess.TimeoutExpired:
        stop(process)
        raise


def finished(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """The SIPp peer ended its scenario successfully (else its output is the failure)."""
    assert isinstance(process, SippProcess), process
    result = process.result(timeout)
    assert result.ok(), result.failure()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_started() -> None:
    """Kill every SIPp :func:`start` launched that is still running (a failed test must not
    leave one holding its port for the next)."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(5)


# ---------------------------------------------------------------- callers and answerers


def sipp(
    scenario: Path,
    target: str,
    *,
    local_port: int,
    media_port: int,
    calls: int = 1,
    rate: float = 1.0,
    limit: int | None = None,
    timeout_s: int = 60,
    extra: list[str] | None = None,
    cwd: Path,
    local_ip: str = "127.0.0.1",
) -> SippProcess:
    """A SIPp caller (UAC) placing ``calls`` calls to ``target``; fails on its timeout."""
    return start(scenario, f"{local_ip}:{local_port}", *(extra or []), workdir=cwd,
                 target=target, media_port=media_port, calls=calls, rate=rate,
                 limit=limit or calls, timeout_s=timeout_s, timeout_error=True)  # fmt: skip


def sipp_agent(
    scenario: Path,
    *,
    local_port: int,
    media_port: int,
    calls: int = 1,
    timeout_s: int = 60,
    cwd: Path,
    local_ip: str = "127.0.0.1",
) -> SippProcess:
    """A SIPp UAS (a softphone, a trunk's customer) waiting for ``calls`` calls on
    ``local_ip:local_port``."""
    return start(scenario, f"{local_ip}:{local_port}", workdir=cwd, media_port=media_port,
                 calls=calls, timeout_s=timeout_s)  # fmt: skip


def register_args(user: str, password: str, contact: str, domain: str = SIP_DOMAIN) -> list[str]:
    """SIPp options for ``register.xml``: digest credentials and the scenario's keys."""
    return ["-au", user, "-ap", password, "-key", "user", user, "-key", "domain", domain,
            "-key", "contact", contact]  # fmt: skip


def register(
    workdir: Path,
    edge: str,
    local: str,
    user: str,
    contact: str,
    *,
    password: str | None = None,
    domain: str = SIP_DOMAIN,
    status: int = 200,
    attempts: int = 1,
    via: str | None = None,
) -> SippResult:
    """One REGISTER of ``user`` (password ``pw<user>`` unless given) at ``edge`` from
    ``local`` naming ``contact``, expecting ``status`` after the digest challenge; tried up
    to ``attempts`` times (an edge busy probing many slots may not answer in time).
    ``via``: the Via's sent-by when not SIPp's own address (a phone behind NAT)."""
    words = {"via": via} if via else {}
    xml = scenario_file("register.xml", workdir, status=status, **words)
    args = register_args(user, password or f"pw{user}", contact, domain)
    for _attempt in range(attempts - 1):
        result = run(xml, local, *args, "-m", "1", workdir=workdir, target=edge, timeout=20,
                     timeout_s=10, timeout_error=True)  # fmt: skip
        if result.ok():
            return result
        time.sleep(2)
    return run(xml, local, *args, "-m", "1", workdir=workdir, target=edge, timeout=20,
               timeout_s=10, timeout_error=True)  # fmt: skip
