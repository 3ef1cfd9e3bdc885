"""Singer message output for a tap that emits many small RECORD messages.

The SDK's default writer serializes with the standard library and flushes stdout after every
message (one `write` system call per row, more with PYTHONUNBUFFERED). This writer uses the SDK's
own msgspec encoding (`singer_sdk.contrib.msgspec`, exact: decimals are written as their number
text) and a 1 MiB output buffer that is flushed after every message that is not a RECORD (SCHEMA,
STATE, ...) and when the tap's sync ends, also when it fails (`TapNorthwindCsv.sync_all`).
Records therefore reach the target in blocks; the messages and their order are unchanged.

Lean messages (the tap's `lean_messages` setting, off by default): SCHEMA messages say only that
a record is an object (`{"type": "object"}`: no columns, no types), and RECORD messages carry no
`time_extracted` (optional in the Singer spec). For a target that only appends records to files,
like the project's target-jsonl-csv: it validates every record against the SCHEMA it receives,
work this tap's own strict parsing has already done, and parses and re-formats each
`time_extracted` it never writes. The catalog (`--discover`) keeps the full schema.
"""

from __future__ import annotations

import select
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import SingerMessageType
from singer_sdk.singerlib.encoding.simple import Message, SchemaMessage

BUFFER_BYTES = 1 << 20


class BufferedMsgSpecWriter(MsgSpecWriter):
    """msgspec-encoded Singer messages, written in blocks: at every non-RECORD message, when the
    block reaches BUFFER_BYTES, and when the sync ends. Writes go to whatever sys.stdout is at that
    moment (the SDK's test runners redirect it)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self.lean = False

    def write_message(self, message: Message) -> None:
        if self.lean:
            message = lean(message)
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


def lean(message: Message) -> Message:
    """The message without what a file-appending target does not use (see the module's text)."""
    if message.type == SingerMessageType.RECORD:
        message.time_extracted = None  # type: ignore[attr-defined]
    elif isinstance(message, SchemaMessage):
        message = SchemaMessage(message.stream, {"type": "object"}, message.key_properties, message.bookmark_properties)
    return message


def _write_all(out: t.BinaryIO, data: bytearray) -> None:
    """Write every byte. With PYTHONUNBUFFERED set, sys.stdout.buffer is the raw file, whose
    write() may take only part of a large block (a pipe that is full, a signal): loop."""
    view = memoryview(data)
    while view:
        written = t.cast("int | None", out.write(view))
        if written is None:  # a non-blocking pipe that is full: wait until it can take more
            select.select([], [out], [])
            continue
        view = view[written:]
