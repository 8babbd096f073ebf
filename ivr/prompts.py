"""Prompts: text rendered offline to 8 kHz mono 16-bit WAV (espeak-ng + sox), or WAV files.

Rendered prompts are cached under ``<state_dir>/prompts/`` by a hash of what produced them
(text, voice, renderer version), so a restart re-renders nothing and an edited menu text
gets a new file. Every prompt the menu tree names is rendered or checked before any slot
starts: a missing file or a broken renderer stops the engine with a message naming the node.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from config.loader import CenterConfig
from config.schemas import (
    CollectNode,
    MenuNode,
    Prompt,
)
from ivr import wav

RENDER_VERSION = "1"  # bump when the render pipeline changes, to refresh every cached file
MAX_ANNOUNCED_POSITION = 20
MAX_ANNOUNCED_MINUTES = 15


class PromptError(Exception):
    """A prompt cannot be rendered or its file is unusable; the message names which."""


@dataclass(frozen=True)
class PromptFile:
    path: str
    duration: float


# Announcements and system prompts, in both languages (the menu's own texts are in menu.toml).
SYSTEM_TEXTS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "system.goodbye": "感谢您的来电，再见。",
        "system.callback": "我们已记录您的回拨请求，将尽快与您联系。再见。",
        "system.agent_unavailable": "坐席暂时无法接听，请继续等候。",
        "system.transfer": "正在为您转接，请稍候。",
        "survey.thanks": "谢谢您的评价，再见。",
        "announce.position.more": "您前面排队的人数较多。",
        "announce.wait.more": "预计等待时间较长，请您耐心等候。",
        "announce.position.{n}": "您目前排在第{n}位。",
        "announce.wait.{n}": "预计等待约{n}分钟。",
    },
    "en": {
        "system.goodbye": "Thank you for calling. Goodbye.",
        "system.callback": "We have recorded your callback request and will call you back soon.",
        "system.agent_unavailable": "The agent is not available. Please keep holding.",
        "system.transfer": "Transferring your call, please wait.",
        "survey.thanks": "Thank you for your feedback. Goodbye.",
        "announce.position.more": "There are many callers ahead of you.",
        "announce.wait.more": "The expected wait is long. Thank you for your patience.",
        "announce.position.{n}": "You are number {n} in the queue.",
        "announce.wait.{n}": "The expected wait is about {n} minutes.",
    },
}
VOICES = {"zh-CN": "cmn", "en": "en"}


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise PromptError(f"{what}: {argv[0]} is not installed") from None
    if result.returncode != 0:
        raise PromptError(f"{what}: {argv[0]} failed: {result.stderr.strip()[:300]}")


def _atomic_target(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".render-", suffix=".wav", dir=final.parent)
    os.close(fd)
    return Path(tmp)


def render_text(text: str, voice: str, cache_dir: Path, what: str = "prompt") -> Path:
    """espeak-ng → sox (8 kHz, mono, 16-bit), cached by content hash."""
    key = hashlib.sha256(f"{RENDER_VERSION}\0{voice}\0{text}".encode()).hexdigest()[:24]
    final = cache_dir / f"tts-{key}.wav"
    if final.exists():
        return final
    raw = _atomic_target(final)
    out = _atomic_target(final)
    try:
        _run(["espeak-ng", "-v", voice, "-w", str(raw), text], what)
        _run(
            [
                "sox",
                str(raw),
                "-r",
                "8000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(out),
                "gain",
                "-n",
                "-3",
            ],
            what,
        )
        out.replace(final)
    finally:
        raw.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    return final


def prepare_file(source: Path, cache_dir: Path, what: str) -> Path:
    """A WAV file from the config: used as is when already 8 kHz mono 16-bit, else converted."""
    if not source.is_file():
        raise PromptError(f"{what}: file {source} not found")
    try:
        facts = wav.facts(source)
    except ValueError as exc:
        raise PromptError(f"{what}: {source} is not a usable WAV file: {exc}") from None
    if (facts.sample_rate, facts.channels, facts.bits) == (8000, 1, 16):
        return source
    key = hashlib.sha256(f"{RENDER_VERSION}\0{facts.sha256}".encode()).hexdigest()[:24]
    final = cache_dir / f"file-{key}.wav"
    if not final.exists():
        out = _atomic_target(final)
        try:
            _run(
                [
                    "sox",
                    str(source),
                    "-r",
                    "8000",
                    "-c",
                    "1",
                    "-b",
                    "16",
                    "-e",
                    "signed-integer",
                    str(out),
                ],
                what,
            )
            out.replace(final)
        finally:
            out.unlink(missing_ok=True)
    return final


def hold_music(cache_dir: Path) -> Path:
    """A soft arpeggio loop generated with sox (no third-party music to license)."""
    final = cache_dir / f"hold-music-v{RENDER_VERSION}.wav"
    if final.exists():
        return final
    notes = [523.25, 659.25, 783.99, 659.25, 587.33, 698.46, 880.0, 698.46]
    parts: list[Path] = []
    try:
        for index, freq in enumerate(notes):
            part = cache_dir / f".hold-part-{os.getpid()}-{index}.wav"
            _run(
                [
                    "sox",
                    "-n",
                    "-r",
                    "8000",
                    "-c",
                    "1",
                    "-b",
                    "16",
                    str(part),
                    "synth",
                    "0.45",
                    "sine",
                    str(freq),
                    "fade",
                    "q",
                    "0.05",
                    "0.45",
                    "0.15",
                    "vol",
                    "0.25",
                ],
                "hold music",
            )
            parts.append(part)
        out = _atomic_target(final)
        _run(["sox", *map(str, parts), str(out)], "hold music")
        out.replace(final)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return final


def node_prompts(config: CenterConfig) -> dict[str, Prompt]:
    """Every prompt the menu tree names, keyed ``<node>.prompt|invalid|timeout``."""
    found: dict[str, Prompt] = {}
    for name, node in config.menu.nodes.items():
        prompt: Prompt | None = node.prompt
        if prompt is not None:  # optional on enqueue/callback/transfer/hangup nodes
            found[f"{name}.prompt"] = prompt
        if isinstance(node, MenuNode | CollectNode) and node.invalid_prompt is not None:
            found[f"{name}.invalid"] = node.invalid_prompt
        if isinstance(node, MenuNode) and node.timeout_prompt is not None:
            found[f"{name}.timeout"] = node.timeout_prompt
    return found


PromptJob = tuple[str, str, Path | None]  # (text, voice, file): a file is checked, a text rendered


def _prompt_jobs(config: CenterConfig, language: str) -> dict[str, PromptJob]:
    """Every prompt to prepare: the menu's (files or texts) and the system texts, those with
    ``{n}`` once per number that can be announced."""
    voice_default = VOICES.get(language, "cmn")
    jobs: dict[str, PromptJob] = {}
    for key, prompt in node_prompts(config).items():
        if prompt.file is not None:
            jobs[key] = ("", "", config.directory / prompt.file)
        else:
            jobs[key] = (prompt.text or "", prompt.voice, None)
    texts = SYSTEM_TEXTS.get(language, SYSTEM_TEXTS["zh-CN"])
    for key, text in texts.items():
        if "{n}" not in key:
            jobs[key] = (text, voice_default, None)
            continue
        top = (
            MAX_ANNOUNCED_POSITION if key.startswith("announce.position") else MAX_ANNOUNCED_MINUTES
        )
        for n in range(1, top + 1):
            jobs[key.replace("{n}", str(n))] = (text.replace("{n}", str(n)), voice_default, None)
    return jobs


def prepare_all(config: CenterConfig, state_dir: Path, language: str) -> dict[str, PromptFile]:
    """Render/check every prompt before the engine starts; raise PromptError listing problems."""
    cache_dir = state_dir / "prompts"
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = _prompt_jobs(config, language)
    problems: list[str] = []

    def work(item: tuple[str, PromptJob]) -> tuple[str, Path | None]:
        key, (text, voice, file) = item
        what = f"{config.directory / 'menu.toml'}: nodes.{key}" if "." in key else key
        try:
            if file is not None:
                return key, prepare_file(file, cache_dir, what)
            return key, render_text(text, voice, cache_dir, what)
        except PromptError as exc:
            problems.append(str(exc))
            return key, None

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, sorted(jobs.items())))
    if problems:
        raise PromptError("prompts cannot be prepared:\n  " + "\n  ".join(sorted(problems)))
    prompts: dict[str, PromptFile] = {}
    for key, path in results:
        assert path is not None
        prompts[key] = PromptFile(str(path.resolve()), wav.facts(path).duration)
    music = hold_music(cache_dir)
    prompts["hold.music"] = PromptFile(str(music.resolve()), wav.facts(music).duration)
    return prompts


def text_prompt(text: str, state_dir: Path, language: str) -> PromptFile:
    """Render an ad-hoc announcement (the ``play`` command's text) to a cached file."""
    path = render_text(text, VOICES.get(language, "cmn"), state_dir / "prompts", "announcement")
    return PromptFile(str(path.resolve()), wav.facts(path).duration)


def copy_cache(source: Path, target_state_dir: Path) -> None:
    """Seed a state directory's prompt cache (tests, new nodes) from another one."""
    target = target_state_dir / "prompts"
    target.mkdir(parents=True, exist_ok=True)
    for item in source.glob("*.wav"):
        if not (target / item.name).exists():
            shutil.copy2(item, target / item.name)
