"""The pages' catalogue (``pages/messages.toml`` and the editor's validation messages): every
message in both languages, naming the same values, so neither page falls back to a key."""

from __future__ import annotations

import re
import tomllib

from pages.i18n import CATALOG, LANGUAGES, MESSAGES, catalog, t


def test_every_message_has_both_languages_naming_the_same_values() -> None:
    for key, entry in MESSAGES.items():
        assert set(entry) == set(LANGUAGES), key
        assert all(isinstance(text, str) and text for text in entry.values()), key
        names = {lang: set(re.findall(r"\{(\w+)\}", text)) for lang, text in entry.items()}
        assert names["zh-CN"] == names["en"], key


def test_the_catalogue_file_is_read_as_written() -> None:
    with CATALOG.open("rb") as file:
        written = tomllib.load(file)
    assert len(written) > 400 and all(key in MESSAGES for key in written)
    assert t("desk.records_unavailable").startswith("客户资料暂时无法读取")
    assert t("admin.at", "en") == "When" and t("no.such.key", "en") == "no.such.key"
    assert (
        catalog("en", "admin.problem.")["admin.problem.int_parsing"] == "should be a whole number"
    )
