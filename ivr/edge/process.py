"""Run the SIP edge: Kamailio as a child process, driven over its ctl socket with kamcmd.

The engine supervisor owns one ``Edge``::

    edge = Edge(settings, center_config, slot_uris)
    edge.start()                      # render config, run kamailio, wait until it answers
    edge.add_slot("sip:127.0.0.1:21012")
    edge.reset_slot_load("sip:127.0.0.1:21003")   # after a slot died mid-call
    edge.stop()

Slots are changed with ``dispatcher.add`` / ``dispatcher.remove``, which keep every slot's
call-load count; ``dispatcher.reload`` would wipe them all (with calls up, new calls would
then bounce off busy slots), so it is never used. Both RPCs are rate limited by the
dispatcher's ``reload_delta``: a refused change ("Ongoing reload") is retried until it passes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from callcenter.supervision import die_with_parent, log_tail, stop_child
from config.loader import CenterConfig
from config.settings import Settings
from ivr.edge.config import edge_probe_address, render_config, uri_host_port
from ivr.edge.dids import DIDS_TABLE, render_dids_table
from ivr.edge.dispatcher import SLOT_SET, normalize_slot_uri, render_dispatcher_list, slot_attrs
from ivr.edge.media_relay import MediaRelay, MediaRelayError, control_address
from ivr.edge.paths import EdgePaths, edge_paths
from ivr.edge.rules import RULES_TABLE, render_rules_table
from ivr.edge.stores import LOCATION_TABLE
from ivr.edge.subscribers import ensure_tables, write_table
from ivr.edge.tls import tls_files

log = logging.getLogger(__name__)


# The dialog profile of slots' calls (the caller's leg and the agent's), valued
# "<slot ip>:<slot port>"
SLOT_PROFILE = "slot"


def _dialog_ids(listing: str) -> list[tuple[str, str]]:
    """(h_entry, h_id) of each dialog in a ``dlg.profile_list``/``dlg.list`` answer."""
    entries = re.findall(r"\bh_entry:\s*(\d+)", listing)
    ids = re.findall(r"\bh_id:\s*(\d+)", listing)
    return list(zip(entries, ids, strict=True))


class EdgeError(RuntimeError):
    """The edge could not be started, or refused a command; the message says why."""


@dataclass(frozen=True)
class SlotState:
    """One slot as the dispatcher sees it."""

    uri: str
    active: bool  # selectable: answered its last OPTIONS probe (or not yet probed)
    probing: bool  # OPTIONS probes are being sent to it
    load: int  # calls the edge currently counts on it (0 or 1)


def default_slot_uris(settings: Settings) -> list[str]:
    """The slot addresses the settings' port plan gives: one per line from slot_base_port."""
    sip = settings.sip
    return [f"sip:{sip.slot_host}:{sip.slot_base_port + i}" for i in range(sip.lines)]


def _group_runs(group: int, config: bytes) -> bool:
    """Whether a live process of process group ``group`` runs with ``config`` on its command
    line (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[2]) != group:
                continue
            if config in (entry / "cmdline").read_bytes().split(b"\0"):
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False


def make_self_signed(certificate: Path, key: Path, host: str, days: int = 825) -> None:
    """A self-signed certificate for the edge's address (the demo's TLS listener): RSA 2048,
    the address as common name and subjectAltName; the key readable by its owner only."""
    binary = shutil.which("openssl")
    if binary is None:
        raise EdgeError("sip.tls_port needs a certificate: install the Debian package openssl")
    certificate.parent.mkdir(parents=True, exist_ok=True)
    kind = "IP" if re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+", host) else "DNS"
    result = subprocess.run(
        [binary, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
         "-subj", f"/CN={host}", "-addext", f"subjectAltName={kind}:{host}",
         "-keyout", str(key), "-out", str(certificate)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise EdgeError(f"generating a self-signed certificate failed: {result.stderr.strip()}")
    key.chmod(0o600)
    log.warning("SIP over TLS with a self-signed certificate for %s: %s", host, certificate)


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def sip_options_ping(host: str, port: int, timeout: float = 0.25) -> int | None:
    """Send one OPTIONS over UDP; the response's status code, or None without an answer."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind((host, 0))
        local_host, local_port = sock.getsockname()[:2]
        branch = "z9hG4bK" + secrets.token_hex(8)
        call_id = secrets.token_hex(12)
        target = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        local = (
            f"[{local_host}]:{local_port}"
            if family == socket.AF_INET6
            else (f"{local_host}:{local_port}")
        )
        request = (
            f"OPTIONS sip:{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local};branch={branch};rport\r\n"
            f"From: <sip:edge-probe@{local}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            sock.sendto(request.encode(), (host, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = sock.recv(65535)
                text = data.decode("utf-8", "replace")
                match = re.match(r"SIP/2\.0 (\d{3}) ", text)
                if match and call_id in text:
                    return int(match.group(1))
        except OSError:  # timeout, ICMP port unreachable (nothing listening yet)
            return None
    return None


class Edge:
    """Kamailio in front of the engine's slots, rendered from the project's settings."""

    def __init__(
        self, settings: Settings, center_config: CenterConfig, slot_uris: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        self.center_config = center_config
        self.paths: EdgePaths = edge_paths(settings)
        self._slots: list[str] = list(dict.fromkeys(normalize_slot_uri(u) for u in slot_uris))
        self._process: subprocess.Popen[bytes] | None = None
        self._kamcmd = self._find_kamcmd()
        # Slot changes may come from several supervisor threads; each is a multi-step RPC.
        self._slot_lock = threading.RLock()
        # rtpengine beside Kamailio when sip.media_relay.rtpengine is set (media_relay.py)
        self.relay: MediaRelay | None = (
            MediaRelay(settings, self.paths.directory) if control_address(settings) else None
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def slots(self) -> list[str]:
        """The slot URIs the edge dispatches to (as configured, whatever their state)."""
        return list(self._slots)

    def render(self) -> None:
        """Write kamailio.cfg, the slot list and the credential tables (without starting)."""
        paths = self.paths
        for directory in (paths.directory, paths.runtime_dir, paths.ctl_socket.parent):
            directory.mkdir(parents=True, exist_ok=True)
        ensure_tables(paths.db_dir)
        text = render_config(self.settings, self.center_config, paths)
        self._write_data(self.center_config)
        if self.settings.sip.tls_port:
            certificate, key = tls_files(self.settings, paths)
            if not certificate.exists() and not self.settings.sip.tls_certificate:
                make_self_signed(certificate, key, self.settings.sip.edge_host)
        _write_atomically(paths.config, text)
        self._write_slot_list()

    def follow_config(self, center_config: CenterConfig) -> list[str]:
        """A new configuration while running: every telephony setting the edge takes is data
        (the ``dids`` and ``rules`` htables), so each changed table is rewritten and reloaded
        (``kamcmd htable.reload``): the next request uses it, calls in progress are untouched,
        Kamailio is not restarted. Returns the tables reloaded. A configuration the edge cannot
        take (e.g. a trunk host that does not resolve here) raises ``EdgeConfigError`` and
        changes nothing: the edge keeps the rules it has."""
        started = time.monotonic()
        changed = self._write_data(center_config)
        self.center_config = center_config
        if self.is_running():
            for table in changed:
                self.rpc("htable.reload", table)
        if changed:
            log.info(
                "SIP edge: %s reloaded in %.0f ms (no restart)",
                " and ".join(changed),
                (time.monotonic() - started) * 1000,
            )
        return changed

    def _write_data(self, center_config: CenterConfig) -> list[str]:
        """Write the DIDs and rules tables for ``center_config`` (both rendered before either
        is written); the tables whose file changed."""
        texts = {
            DIDS_TABLE: render_dids_table(center_config),
            RULES_TABLE: render_rules_table(self.settings, center_config),
        }
        return [name for name, text in texts.items() if write_table(self.paths.db_dir / name, text)]

    def start(self, timeout: float = 15.0) -> None:
        """Render the configuration, run Kamailio, and return once it answers OPTIONS."""
        if self.is_running():
            raise EdgeError(f"the SIP edge is already running (pid {self.pid})")
        self.render()
        self._check_config()
        self._stop_stale()
        if self.relay is not None:
            try:
                self.relay.start()
            except MediaRelayError as exc:
                raise EdgeError(f"media relay: {exc}") from None
        paths = self.paths
        with contextlib.suppress(FileNotFoundError):
            paths.ctl_socket.unlink()
        if paths.log.exists():
            os.replace(paths.log, paths.log.with_suffix(".log.1"))
        command = [
            self.settings.sip.kamailio_binary,
            "-DD",  # stay in the foreground: the supervisor owns the process
            "-E",  # log to stderr (our log file)
            "-f",
            str(paths.config),
            "-Y",
            str(paths.runtime_dir),
        ]
        parent = os.getpid()
        with open(paths.log, "ab") as log_file:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can end its children
                close_fds=True,
                # Kamailio ends (and ends its own children) when the process that started it
                # dies, even by SIGKILL: an orphaned edge would keep the SIP port and answer
                # calls with no slot behind it. Start the edge from a thread that lives as
                # long as it should (the supervisor's main thread).
                preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
            )
        (paths.directory / "kamailio.pid").write_text(f"{self._process.pid}\n")
        host, port = edge_probe_address(self.settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                if self.relay is not None:
                    self.relay.stop()
                raise EdgeError(
                    f"kamailio exited with code {self._process.returncode} at start; "
                    f"log {paths.log}:\n{self.log_tail()}"
                )
            # Paced well under the pike threshold: the edge's own address is not exempt.
            if sip_options_ping(host, port, timeout=0.25) == 200 and paths.ctl_socket.exists():
                log.info("SIP edge up on %s:%s (pid %s)", host, port, self._process.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise EdgeError(
            f"kamailio did not answer OPTIONS on {host}:{port} within {timeout:.0f} s; "
            f"log {paths.log}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop Kamailio (SIGTERM, then SIGKILL to its process group). Safe to call twice."""
        if self.relay is not None:
            self.relay.stop(timeout)
        process = self._process
        if process is None:
            return
        stop_child(process, timeout)
        # Worker processes normally exit with the main one; make sure none is left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self._process = None
        with contextlib.suppress(FileNotFoundError):
            (self.paths.directory / "kamailio.pid").unlink()
        with contextlib.suppress(FileNotFoundError):
            self.paths.ctl_socket.unlink()

    def exit_code(self) -> int | None:
        """Kamailio's exit status once it has ended (negative: the signal), else None."""
        return self._process.poll() if self._process is not None else None

    def is_running(self) -> bool:
        """Kamailio runs, and so does the media relay when there is one (a dead relay makes
        the edge dead to its supervisor, which restarts both)."""
        if self.relay is not None and self._process is not None and not self.relay.is_running():
            return False
        return self._process is not None and self._process.poll() is None

    def ping(self, timeout: float = 0.5) -> bool:
        """True when the edge answers an OPTIONS with 200."""
        host, port = edge_probe_address(self.settings)
        return sip_options_ping(host, port, timeout=timeout) == 200

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.paths.log, lines)

    # ------------------------------------------------------------------ slots

    def add_slot(self, uri: str) -> None:
        """Start dispatching to a slot (kept across an edge restart). No-op if listed."""
        normalized = normalize_slot_uri(uri)
        with self._slot_lock:
            self._add_slot(normalized)

    def _add_slot(self, normalized: str) -> None:
        if normalized in self._slots:
            return
        if self.is_running():
            self._dispatcher_change(
                "dispatcher.add", str(SLOT_SET), normalized, "0", "0", slot_attrs(normalized)
            )
        self._slots.append(normalized)
        self._write_slot_list()

    def remove_slot(self, uri: str) -> None:
        """Stop dispatching to a slot; calls it carries are unaffected. No-op if not listed."""
        normalized = normalize_slot_uri(uri)
        with self._slot_lock:
            self._remove_slot(normalized)

    def _remove_slot(self, normalized: str) -> None:
        if normalized not in self._slots:
            return
        if self.is_running():
            self._dispatcher_change("dispatcher.remove", str(SLOT_SET), normalized)
        self._slots.remove(normalized)
        self._write_slot_list()

    def hold_slot(self, uri: str) -> None:
        """Stop dispatching new calls to a slot (state ``d``: disabled, not probed back)
        while it carries a call this edge did not count (it was restarted meanwhile)."""
        self.rpc("dispatcher.set_state", "d", str(SLOT_SET), normalize_slot_uri(uri))

    def release_slot(self, uri: str) -> None:
        """Dispatch to a held slot again (active; the OPTIONS probes keep checking it)."""
        self.rpc("dispatcher.set_state", "a", str(SLOT_SET), normalize_slot_uri(uri))

    def reset_slot_load(self, uri: str) -> None:
        """Forget the calls the edge counts on one slot (e.g. a slot restarted mid-call).

        The call-load table only shrinks when the edge sees a BYE; remove and re-add the slot
        (``reload_delta`` apart, which ``_dispatcher_change`` waits out) to start it at zero.
        """
        normalized = normalize_slot_uri(uri)
        with self._slot_lock:
            self._reset_slot_load(normalized)

    def _reset_slot_load(self, normalized: str) -> None:
        if not self.is_running():
            return
        if normalized in self._slots:
            self._dispatcher_change("dispatcher.remove", str(SLOT_SET), normalized)
        self._dispatcher_change(
            "dispatcher.add", str(SLOT_SET), normalized, "0", "0", slot_attrs(normalized)
        )
        if normalized not in self._slots:
            self._slots.append(normalized)
            self._write_slot_list()

    def slot_states(self) -> dict[str, SlotState]:
        """Every slot the running edge knows, with its probe state and call load."""
        output = self.rpc("dispatcher.list", check=False)
        if "No Destination Sets" in output:  # an empty list is an error to the RPC
            return {}
        if output.startswith("error:"):
            raise EdgeError(f"kamcmd dispatcher.list: {output}")
        states: dict[str, SlotState] = {}
        for block in output.split("DEST:")[1:]:
            uri = re.search(r"URI:\s*(\S+)", block)
            flags = re.search(r"FLAGS:\s*(\S+)", block)
            load = re.search(r"DLGLOAD:\s*(\d+)", block)
            if not uri or not flags:
                continue
            states[uri.group(1)] = SlotState(
                uri=uri.group(1),
                active=flags.group(1)[:1] in {"A", "T"},
                probing=flags.group(1)[1:2] == "P",
                load=int(load.group(1)) if load else 0,
            )
        return states

    # ------------------------------------------------------------------ flood bans

    def banned_addresses(self) -> list[str]:
        """Addresses currently banned for flooding."""
        output = self.rpc("htable.dump", "ban")
        return sorted(set(re.findall(r"name:\s*(\S+)", output)))

    def unban(self, address: str) -> None:
        output = self.rpc("htable.delete", "ban", address, check=False)
        if output.startswith("error:") and "404" not in output:
            raise EdgeError(f"unban {address}: {output.strip()}")

    # ------------------------------------------------------------------ registrations

    def contacts(self, aor: str) -> str:
        """What the registrar holds for ``aor`` (the extension): ``kamcmd ul.lookup``'s text,
        with every contact's ``Address`` and ``Socket``; "" when it has none. Read from Redis
        with ``usrloc_db_mode`` 3, so it shows registrations made at any edge of the center."""
        # "s:" keeps kamcmd from sending an all-digit extension as an integer.
        output = self.rpc("ul.lookup", LOCATION_TABLE, f"s:{aor}", check=False)
        if output.startswith("error:"):
            if "404" in output or "not found" in output.lower():
                return ""
            raise EdgeError(f"kamcmd ul.lookup {aor}: {output}")
        return output

    # ------------------------------------------------------------------ dialogs

    def end_slot_dialogs(self, uri: str) -> int:
        """End the dialogs of a lost slot (dead alone, or gone with its node): the callers'
        legs it answered and the agents' legs it placed. The dialog module sends BYE to both
        ends of each (the one to the phone hangs it up; the one to the dead slot goes
        unanswered, or a restarted slot answers 481). Returns how many were ended."""
        host, port = uri_host_port(uri)
        listing = self.rpc("dlg.profile_list", SLOT_PROFILE, f"s:{host}:{port}", check=False)
        if listing.startswith("error:"):
            raise EdgeError(f"kamcmd dlg.profile_list {SLOT_PROFILE} {host}:{port}: {listing}")
        ended = 0
        for h_entry, h_id in _dialog_ids(listing):
            output = self.rpc("dlg.end_dlg", h_entry, h_id, check=False)
            if output.startswith("error:"):  # ended meanwhile (its BYE crossed ours)
                log.info("dialog %s:%s of slot %s: %s", h_entry, h_id, uri, output)
                continue
            ended += 1
        if ended:
            log.warning("ended %d call leg(s) of lost slot %s (BYE to the phones)",
                        ended, uri)  # fmt: skip
        return ended

    # ------------------------------------------------------------------ RPC

    def rpc(self, *args: str, check: bool = True, timeout: float = 5.0) -> str:
        """Run one kamcmd command on the edge's ctl socket; its output text."""
        if not self.is_running():
            raise EdgeError("the SIP edge is not running")
        command = [self._kamcmd, "-s", f"unix:{self.paths.ctl_socket}", *args]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise EdgeError(f"kamcmd {' '.join(args)}: no answer within {timeout} s") from None
        output = (result.stdout + result.stderr).strip()
        # kamcmd exits 0 even when the command failed: the text says "error: <code> - ...".
        if check and (result.returncode != 0 or output.startswith("error:")):
            raise EdgeError(f"kamcmd {' '.join(args)}: {output or result.returncode}")
        return output

    def _dispatcher_change(self, *args: str) -> None:
        # reload_delta rate-limits dispatcher.add/remove ("500 - Ongoing reload"): retry.
        deadline = time.monotonic() + self.settings.sip.edge.reload_delta_seconds + 5.0
        while True:
            output = self.rpc(*args, check=False)
            if not output.startswith("error:"):
                return
            if "Ongoing reload" not in output or time.monotonic() > deadline:
                raise EdgeError(f"kamcmd {' '.join(args)}: {output}")
            time.sleep(0.1)

    # ------------------------------------------------------------------ helpers

    def _write_slot_list(self) -> None:
        self.paths.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.paths.dispatcher_list, render_dispatcher_list(self._slots))

    def _find_kamcmd(self) -> str:
        binary = (
            shutil.which(self.settings.sip.kamailio_binary) or self.settings.sip.kamailio_binary
        )
        sibling = Path(binary).with_name("kamcmd")
        if sibling.exists():
            return str(sibling)
        return shutil.which("kamcmd") or "kamcmd"

    def _check_config(self) -> None:
        paths = self.paths
        try:
            result = subprocess.run(
                [
                    self.settings.sip.kamailio_binary,
                    "-c",
                    "-f",
                    str(paths.config),
                    "-Y",
                    str(paths.runtime_dir),
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except FileNotFoundError:
            raise EdgeError(
                f"kamailio binary {self.settings.sip.kamailio_binary!r} not found: install the "
                "Debian package `kamailio` (bash scripts/dev.sh setup) or set "
                "CALLCENTER_SIP__KAMAILIO_BINARY"
            ) from None
        if result.returncode != 0:
            raise EdgeError(
                f"kamailio refused the rendered configuration {paths.config}:\n"
                + (result.stdout + result.stderr).strip()[-3000:]
            )

    def _stop_stale(self) -> None:
        """End a Kamailio this edge started earlier and lost track of (supervisor crash), or
        the children of one whose main process was killed alone (SIGKILL): they keep the SIP
        ports. Both are found by the process group (Kamailio runs in its own, led by the pid
        in the pid file) and the configuration file they run."""
        pid_file = self.paths.directory / "kamailio.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        # Only a kamailio running this very configuration file is ours.
        if _group_runs(pid, str(self.paths.config).encode()):
            log.warning("stopping a stale SIP edge (process group %s) left by an earlier run", pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _group_runs(pid, str(self.paths.config).encode()):
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
