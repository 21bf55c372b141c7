"""Telegram Desktop's JSON export: personal chats, groups, service messages, entity text, media beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import ingest.telegram
from ingest.telegram import TelegramImporter
from vault import IngestError, Kind, Vault
from vault.formats import BadRecord, Notice, SourceRecord
from vault.formats.importing import import_file

TG = Path(__file__).parent.parent / "fixtures" / "telegram"
EXPORT = TG / "DataExport_2024-03-10"


def read(path: Path = EXPORT) -> tuple[dict[str, SourceRecord], list[BadRecord | Notice]]:
    items = list(TelegramImporter().read(path))
    return ({r.source_id: r for r in items if isinstance(r, SourceRecord)},
            [r for r in items if not isinstance(r, SourceRecord)])


def test_personal_chat_messages_keep_ids_instants_senders_and_entities() -> None:
    msgs, other = read()
    assert other == [] and len(msgs) == 11 and all(m.kind is Kind.MESSAGE for m in msgs.values())
    first = msgs["2002:101"].fields
    assert (first["thread"], first["thread_id"], first["chat_type"]) == ("Ada Lovelace", 2002, "personal_chat")
    assert first["date"] == "2024-03-05T08:12:33+00:00" and first["date_local"] == "2024-03-05T09:12:33"
    assert (first["from"], first["from_id"], first["body"]) == ("Ada Lovelace", "user2002",
                                                                "Good morning! Are the punched cards ready?")
    reply = msgs["2002:102"].fields
    assert reply["body"] == "Almost: see the plan and do not lose it." and reply["reply_to_message_id"] == 101
    assert reply["text_parts"][1] == {"type": "text_link", "text": "the plan", "href": "https://example.org/plan"}
    assert reply["edited"] == "2024-03-05T08:15:10+00:00" and reply["edited_local"] == "2024-03-05T09:15:10"
    assert [e["type"] for e in reply["text_entities"]] == ["plain", "text_link", "plain", "bold", "plain"]


def test_groups_and_service_messages() -> None:
    msgs, _ = read()
    created, invited, pinned = msgs["1700000003:1"], msgs["1700000003:2"], msgs["1700000003:5"]
    assert created.fields["system"] is True and created.fields["from"] == "Charles Babbage"
    assert (created.fields["action"], created.fields["members"]) == ("create_group", ["Charles Babbage", "Ada Lovelace"])
    assert invited.fields["action"] == "invite_members" and pinned.fields["target_message_id"] == 4
    call = msgs["2002:106"].fields
    assert (call["action"], call["duration_seconds"], call["discard_reason"]) == ("phone_call", 312, "hangup")
    forwarded = msgs["1700000003:4"].fields
    assert forwarded["forwarded_from"] == "Royal Society" and forwarded["body"] == "Meeting on @thursday \u2014 #engines"
    assert forwarded["reactions"] == [{"type": "emoji", "count": 2, "emoji": "\u2764"}]
    assert forwarded["chat_type"] == "private_supergroup"


def test_media_beside_the_export_are_attachments() -> None:
    msgs, _ = read()
    (photo,) = msgs["1700000003:3"].attachments
    rel = "chats/chat_002/photos/photo_1@07-03-2024_18-02-11.jpg"
    assert (photo.name, photo.content_type, photo.data) == (rel, "image/jpeg", (EXPORT / rel).read_bytes())
    (pdf,) = msgs["2002:103"].attachments
    assert (pdf.name, pdf.content_type) == ("chats/chat_001/files/engine-notes.pdf", "application/pdf")
    voice = msgs["2002:104"]  # exported without its media: said so in its fields, nothing attached
    assert voice.attachments == () and voice.fields["file"].startswith("(File not included")
    assert voice.fields["media_type"] == "voice_message" and voice.fields["duration_seconds"] == 4
    assert msgs["2002:105"].fields["sticker_emoji"] == "\U0001F44D"


def test_a_media_path_leading_outside_is_refused_and_a_missing_one_said(tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(b"SECRET")
    folder = tmp_path / "ChatExport"
    folder.mkdir()
    chat = {"name": "Ada", "type": "personal_chat", "id": 7, "messages": [
        {"id": 1, "type": "message", "date": "2024-03-05T09:00:00", "date_unixtime": "1709625600",
         "from": "Ada", "photo": "../secret.jpg", "text": "look"},
        {"id": 2, "type": "message", "date": "2024-03-05T09:01:00", "date_unixtime": "1709625660",
         "from": "Ada", "photo": "photos/photo_2@05-03-2024_09-01-00.jpg", "text": "and this"}]}
    (folder / "result.json").write_text(json.dumps(chat))
    msgs, other = read(folder)
    assert [(o.location, type(o).__name__) for o in other] == [("Ada, message 1", "BadRecord"), ("Ada, message 2", "Notice")]
    assert "leads outside the export folder" in other[0].reason
    assert msgs["7:1"].attachments == () and "SECRET" not in repr(msgs)


def test_a_single_chat_export_the_file_or_its_folder(vault: Vault) -> None:
    msgs, (bad,) = read(TG / "one-bad" / "result.json")
    assert list(msgs) == ["2002:1", "2002:3"] and bad.location == "Ada Lovelace, message 2"
    assert "is not a time" in bad.reason
    assert TelegramImporter().detect(TG / "one-bad") and TelegramImporter().detect(EXPORT / "result.json")


def test_the_accounts_own_data_is_not_messages(vault: Vault) -> None:
    s = import_file(vault, EXPORT, "telegram")
    stats = vault.stats()
    assert s.created == 11 and (stats["messages"], stats["contacts"], stats["blobs"]) == (11, 0, 2)


def test_an_export_too_large_to_parse_at_once_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "x"
    shutil.copytree(EXPORT, folder)
    monkeypatch.setattr(ingest.telegram, "MAX_EXPORT", 1024)
    with pytest.raises(IngestError, match="export the chats in parts"):
        read(folder)


def test_json_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"settings": {"theme": "dark"}}')
    with pytest.raises(IngestError, match="not a Telegram export"):
        read(path)
    path.write_text('{"messages": [1, 2,')
    with pytest.raises(IngestError, match=r"line 1\): it is not valid JSON"):
        read(path)
