"""Which text encoding a delimited file is in, told from its first bytes.

Municipal exports are not all UTF-8: a CSV saved by a French spreadsheet is Windows-1252
("CSV (séparateur : point-virgule)"), or UTF-16 with a byte-order mark ("Texte Unicode").
Read as UTF-8, every row holding an accent of a Windows-1252 file was quarantined as "not
valid UTF-8 text": nine rows in ten of the bundled Paris reports.

``sniff`` decides on a sample (``SAMPLE_BYTES`` of the decompressed file), as GDAL's CSV
driver and spreadsheets do: a byte-order mark names its encoding; a sample that decodes as
UTF-8 is UTF-8; a sample holding bytes UTF-8 cannot decode and *not one* multi-byte UTF-8
sequence is Windows-1252 (text in that encoding almost never forms a valid UTF-8 sequence:
an accented letter is one byte followed by an ASCII one). A sample with both is UTF-8 with
a few broken bytes, the rows holding them quarantined as before, rather than a whole file
read wrong. A file whose first MiB is plain ASCII is read as UTF-8; should it hold other
bytes later, their rows are quarantined and the import says to name the encoding
(``--encoding``), which ``named`` checks.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

AUTO = "auto"
SAMPLE_BYTES = 1 << 20
"""Bytes of the (decompressed) file the encoding is told from."""

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),  # before UTF-16 LE: it starts with its BOM
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_MULTIBYTE_UTF8 = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]"
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
"""One well-formed UTF-8 sequence of two to four bytes (RFC 3629's table)."""


@dataclass(frozen=True)
class TextEncoding:
    """How a file's bytes are decoded."""

    codec: str
    """The Python codec (``utf-8-sig`` reads UTF-8 with or without its mark)."""
    label: str
    """Its name for people (the import prints it when it is not UTF-8)."""
    reason: str
    """Why it was chosen."""

    @property
    def ascii_compatible(self) -> bool:
        """ASCII bytes are the same characters, one byte each: a block of ASCII bytes
        holds no undecodable sequence (not so in UTF-16 or UTF-32)."""
        return not self.codec.startswith("utf-16") and not self.codec.startswith("utf-32")


UTF8 = TextEncoding("utf-8-sig", "UTF-8", "the default")


def sniff(sample: bytes) -> TextEncoding:
    """The encoding of a file that begins with ``sample``."""
    for mark, codec, label in _BOMS:
        if sample.startswith(mark):
            return TextEncoding(codec, label, "its byte-order mark")
    try:
        # Not final: the sample may end in the middle of a character.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return UTF8
    except UnicodeDecodeError:
        pass
    if _MULTIBYTE_UTF8.search(sample) is None:
        return TextEncoding(
            "cp1252",
            "Windows-1252",
            "bytes that are not UTF-8 and no UTF-8 sequence in its first "
            f"{len(sample) // 1024:,} KiB",
        )
    return TextEncoding("utf-8-sig", "UTF-8", "mostly UTF-8: rows with other bytes quarantined")


def named(name: str) -> TextEncoding:
    """The encoding called ``name`` (any name Python knows: ``cp1252``, ``latin-1``,
    ``iso-8859-15``, ``utf-16``...); ``ValueError`` saying why when there is none."""
    try:
        info = codecs.lookup(name)
        "".encode(info.name)  # LookupError for a codec that is not a text encoding (base64)
    except LookupError:
        raise ValueError(f"unknown text encoding {name!r} (e.g. utf-8, cp1252, latin-1)") from None
    codec = "utf-8-sig" if info.name == "utf-8" else info.name
    return TextEncoding(codec, info.name, "named by the user")
