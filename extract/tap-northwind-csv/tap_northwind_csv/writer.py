"""Singer message output for a tap that emits many small RECORD messages.

The SDK's default writer serializes with the standard library and flushes stdout after every
message (one `write` system call per row, more with PYTHONUNBUFFERED). This writer uses the SDK's
own msgspec encoding (`singer_sdk.contrib.msgspec`, exact: decimals are written as their number
text) and a 1 MiB output buffer that is flushed after every message that is not a RECORD (SCHEMA,
STATE, ...) and when the process exits. Records therefore reach the target in blocks; the
messages and their order are unchanged.
"""

from __future__ import annotations

import atexit
import select
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.encoding.simple import Message, SingerMessageType

BUFFER_BYTES = 1 << 20


class BufferedMsgSpecWriter(MsgSpecWriter):
    """msgspec-encoded Singer messages, written in blocks: at every non-RECORD message, when the
    block reaches BUFFER_BYTES, and at exit. Writes go to whatever sys.stdout is at that moment
    (the SDK's test runners redirect it)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        atexit.register(self.flush)

    def write_message(self, message: Message) -> None:
        self._pending += self.format_message(message)  # a copy: msgspec reuses its buffer
        if message.type != SingerMessageType.RECORD or len(self._pending) >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        try:
            if self._pending:
                out = getattr(sys.stdout, "buffer", None)
                if out is not None:
                    _write_all(out, self._pending)
                else:
                    sys.stdout.write(self._pending.decode())
                self._pending.clear()
            sys.stdout.flush()
        except (OSError, ValueError):  # stdout already closed (the reader went away): nothing to do
            pass


def _write_all(out: t.BinaryIO, data: bytearray) -> None:
    """Write every byte. With PYTHONUNBUFFERED set, sys.stdout.buffer is the raw file, whose
    write() may take only part of a large block (a pipe that is full, a signal): loop."""
    view = memoryview(data)
    while view:
        written = out.write(view)
        if written is None:  # a non-blocking pipe that is full: wait until it can take more
            select.select([], [out], [])
            continue
        view = view[written:]
