"""The photo upload's multipart body, read as it streams in: bounded, in memory, no file.

Starlette's form parser spools every file part to a temporary file before the handler
runs, so a photo was written to disk before its ``api_key`` (another part of the same
body) was even looked at. This reader is fed the body chunk by chunk: the handler can
check the key as soon as its part has arrived and stop reading; the photo part is kept in
memory and refused the moment it passes ``max_media_bytes``; other fields are small and
few. Nothing is written anywhere until the cleaned image is stored.
"""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from voirie.errors import InvalidInput, TooLarge

MEDIA_FIELD = "media"
MAX_FIELD_BYTES = 4096
MAX_PARTS = 8


class MediaForm:
    """A multipart/form-data body with one photo (field ``media``) and a few text fields."""

    def __init__(
        self, content_type: str | None, max_media_bytes: int, field: str = MEDIA_FIELD
    ) -> None:
        kind, options = parse_options_header(content_type)
        if kind != b"multipart/form-data" or not options.get(b"boundary"):
            raise InvalidInput(
                f"{field}: send the photo as multipart/form-data, in the field {field!r}",
                field=field,
            )
        self.max_media_bytes = max_media_bytes
        self.field = field
        self.fields: dict[str, str] = {}
        self.media: bytes | None = None
        self._parts = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._data = bytearray()
        self._parser = MultipartParser(
            options[b"boundary"],
            callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": lambda data, start, end: self._header_name.extend(
                    data[start:end]
                ),
                "on_header_value": lambda data, start, end: self._header_value.extend(
                    data[start:end]
                ),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body (errors name the field at fault)."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidInput(
                f"{self.field}: malformed multipart body ({exc})", field=self.field
            ) from None

    def finish(self) -> bytes:
        """End of the body: the photo's bytes (``InvalidInput`` when it is missing)."""
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise InvalidInput(
                f"{self.field}: malformed multipart body ({exc})", field=self.field
            ) from None
        if self.media is None:  # an empty part is a photo that is not one: 415 later
            raise InvalidInput(
                f"{self.field}: missing; send the photo in the multipart field {self.field!r}",
                field=self.field,
            )
        return self.media

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidInput(f"request: more than {MAX_PARTS} form fields", field="request")
        self._disposition = b""
        self._name = ""
        self._data = bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if not name:
            raise InvalidInput("request: a form part without a name", field="request")
        self._name = name.decode("utf-8", errors="replace")
        if self._name == self.field and self.media is not None:
            raise InvalidInput(f"{self.field}: one photo per upload", field=self.field)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data.extend(data[start:end])
        if self._name == self.field:
            if len(self._data) > self.max_media_bytes:
                raise TooLarge(
                    f"{self.field}: larger than {self.max_media_bytes} bytes", field=self.field
                )
        elif len(self._data) > MAX_FIELD_BYTES:
            raise InvalidInput(
                f"{self._name[:40]}: longer than {MAX_FIELD_BYTES} bytes", field=self._name[:40]
            )

    def _part_end(self) -> None:
        if self._name == self.field:
            self.media = bytes(self._data)
            return
        try:
            self.fields[self._name] = self._data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{self._name[:40]}: not UTF-8 text", field=self._name[:40]
            ) from None
