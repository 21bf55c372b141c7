"""Reading a long stretch of the log in a second process, so a long replay uses both cores.

The child (`child_main`, in a new interpreter) checks the chain and decrypts while
this process folds what it has already received. It gets the event key
through its stdin pipe (never a file or its command line), opens the vault
read-only, and sends the events back through its stdout as marshal-ed
batches of plain values (`codec.decode_parts`). Only committed events are
read this way: the child cannot see a transaction still open here. If the
child cannot start or dies, the rest is read in this process: it is only ever
a faster way to the same events, checked the same way.
"""

from __future__ import annotations

import marshal
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

from vault.errors import TamperDetected

if TYPE_CHECKING:
    from vault.store.log import EventLog

READ_AHEAD_FROM = 20_000  # events: below this, starting a process costs more than it saves
_BATCH = 2000  # events per message
_LENGTH = struct.Struct(">I")
_EVENTS, _TAMPER = 0, 1


def read_ahead(log: "EventLog", after: int, upto: int) -> Iterator[tuple]:
    """The committed events after seq `after` up to `upto`, as `log.read_parts` gives them, decrypted by a child."""
    assert log.keys is not None, "a blind log cannot decrypt"
    seq, child = after, _start()
    if child is not None:
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(marshal.dumps((str(log.path), log.keys.event, after, upto)))
            child.stdin.close()
            for kind, body in _messages(child.stdout):
                if kind == _TAMPER:
                    raise TamperDetected(*body)
                yield from body
                seq = body[-1][0] if body else seq
        except (OSError, EOFError, ValueError):
            pass  # the child failed: what it did not deliver is read below
        finally:
            child.kill()
            child.wait()
    yield from log.read_parts_here(seq, upto) if seq < upto else ()


def _start() -> subprocess.Popen | None:
    """The child, importing this very copy of the package; None if it cannot start."""
    if not sys.executable:
        return None
    paths = [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    try:
        return subprocess.Popen([sys.executable, "-c", f"import {__name__} as m; m.child_main()"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return None


def _messages(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    while header := stream.read(_LENGTH.size):
        if len(header) < _LENGTH.size:
            raise EOFError("the child's output ended inside a message")
        body = stream.read(_LENGTH.unpack(header)[0])
        yield marshal.loads(body)


def _send(stream: IO[bytes], message: tuple[int, Any]) -> None:
    body = marshal.dumps(message)
    stream.write(_LENGTH.pack(len(body)) + body)


def child_main() -> None:
    """The child: check, decrypt and take apart the requested events, sending them in batches."""
    from vault.store import schema
    from vault.store.log import EventLog, open_event

    stdout = sys.stdout.buffer
    path, key, after, upto = marshal.loads(sys.stdin.buffer.read())
    log = EventLog(schema.connect(Path(path)), Path(path), None)
    batch: list[tuple] = []
    try:
        for seq, prev, _, payload in log.checked_rows(after, upto):
            batch.append((seq, *open_event(key, log.vault_id, seq, prev, payload)))
            if len(batch) == _BATCH:
                _send(stdout, (_EVENTS, batch))
                batch = []
    except TamperDetected as e:
        _send(stdout, (_EVENTS, batch))
        _send(stdout, (_TAMPER, (e.seq, e.reason)))
        return
    _send(stdout, (_EVENTS, batch))
