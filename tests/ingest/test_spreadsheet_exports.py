"""Report files as spreadsheets save them: Windows-1252, UTF-16 with its mark, decimal
commas, semicolons, Excel's ``sep=`` line, a column name given twice, day-first dates.
Each must read as the UTF-8 export of the same rows reads, on real Paris reports, through
the reader and through the real ``voirie import`` command.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.clirunner import run_voirie
from voirie.city import City
from voirie.ingest.encoding import UTF8, named, sniff
from voirie.ingest.mapping import DANSMARUE, ColumnMapping, load_mapping
from voirie.ingest.sources import PROBLEM, read_csv, read_geojson
from voirie.ingest.validate import validate

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "cities/paris/reports/dansmarue_2023-07_2024-03.csv.gz"
CITY = ROOT / "cities/paris"
ROWS = 1_500


@pytest.fixture(scope="module")
def utf8_text() -> str:
    """The header and the first ``ROWS`` rows of the bundled Paris export, as text."""
    with gzip.open(REPORTS, "rt", encoding="utf-8", newline="") as text:
        return "".join(next(text) for _ in range(ROWS + 1))


def _as_spreadsheet_would(text: str, codec: str) -> tuple[bytes, str]:
    """``text`` saved in ``codec`` (characters it lacks as '?'), and the text that saving
    leaves: what reading the file back must give."""
    data = text.encode(codec, errors="replace")
    return data, data.decode(codec)


def _cells(path: Path, **encoding: object) -> pd.DataFrame:
    return read_csv(path, **encoding).rows  # type: ignore[arg-type]


# --- telling the encoding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "codec", "label"),
    [
        (b"id,name\n1,rue\n", "utf-8-sig", "UTF-8"),  # ASCII
        (b"id,name\n1,caf\xc3\xa9\n", "utf-8-sig", "UTF-8"),
        (b"id,name\n1,caf\xc3", "utf-8-sig", "UTF-8"),  # the sample cut inside a character
        (b"id,name\n1,caf\xe9\n2,\x9cuvre \x80\n", "cp1252", "Windows-1252"),
        (b"id,name\n1,caf\xc3\xa9\n2,caf\xe9\n", "utf-8-sig", "UTF-8"),  # UTF-8, one bad byte
        (codecs.BOM_UTF8 + b"id\n", "utf-8-sig", "UTF-8"),
        ("id\n1,é\n".encode("utf-16"), "utf-16", "UTF-16"),
        ("id\n1,é\n".encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""]), "utf-16", "UTF-16"),
        ("id\n".encode("utf-32"), "utf-32", "UTF-32"),
    ],
)
def test_the_encoding_is_told_from_the_first_bytes(sample: bytes, codec: str, label: str) -> None:
    told = sniff(sample)
    assert (told.codec, told.label) == (codec, label)


@pytest.mark.parametrize(
    ("name", "codec"),
    [("cp1252", "cp1252"), ("latin-1", "iso8859-1"), ("UTF8", "utf-8-sig"), ("utf-16", "utf-16")],
)
def test_an_encoding_is_named_as_python_names_it(name: str, codec: str) -> None:
    assert named(name).codec == codec


@pytest.mark.parametrize("name", ["nope", "base64", "rot13", ""])
def test_a_name_that_is_not_a_text_encoding_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown text encoding"):
        named(name)


# --- reading real rows ----------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["cp1252", "utf-16", "utf-8-sig"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_a_spreadsheet_export_reads_as_the_utf8_file(
    tmp_path: Path, utf8_text: str, codec: str, gzipped: bool
) -> None:
    data, expected_text = _as_spreadsheet_would(utf8_text, codec)
    path = tmp_path / ("saved.csv.gz" if gzipped else "saved.csv")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    reference = tmp_path / "reference.csv"
    reference.write_text(expected_text, encoding="utf-8")
    read = _cells(path)
    assert read[PROBLEM].isna().all()
    pd.testing.assert_frame_equal(read, _cells(reference))
    if codec == "cp1252":  # the accents the file holds, read back: not replaced
        assert read["soustype"].str.contains("é").sum() > ROWS // 4


def test_a_byte_windows_1252_lacks_quarantines_its_row_naming_the_encoding(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"id,name,note\n1,caf\xe9,ok\n2,\x81x,\xe9t\xe9\n3,\x9cuvre,\x80\n")
    rows = read_csv(path).rows
    assert rows["name"].tolist() == ["café", "\ufffdx", "œuvre"]
    assert rows["note"].tolist() == ["ok", "été", "€"]
    assert rows[PROBLEM].tolist() == [None, "row is not valid Windows-1252 text (in name)", None]


def test_an_invalid_utf16_unit_is_found_before_ascii_blocks(tmp_path: Path) -> None:
    """In UTF-16 an ASCII byte is half a character: blocks of them are decoded too. A lone
    high surrogate that ends the first 8 KiB block is told by the next, ASCII-only block
    (before the end of the file, while its rows are checked): its row is quarantined."""
    head = codecs.BOM_UTF16_LE + "id,name\n".encode("utf-16-le")
    before = head + "".join(f"{i},x\n" for i in range(500)).encode("utf-16-le")
    pad = (8190 - len(before) - len("500,a".encode("utf-16-le"))) // 2
    before += f"500,a{'y' * pad}".encode("utf-16-le")
    assert len(before) == 8190
    after = "".join(f"{i},x\n" for i in range(501, 6_000)).encode("utf-16-le")
    path = tmp_path / "u16.csv"
    path.write_bytes(before + b"\x00\xd8" + "\n".encode("utf-16-le") + after)
    rows = read_csv(path).rows
    assert rows["name"].iloc[500] == f"a{'y' * pad}\ufffd"
    assert rows[PROBLEM].iloc[500] == "row is not valid UTF-16 text (in name)"
    assert rows[PROBLEM].drop(index=500).isna().all()


def test_utf8_named_reads_a_file_that_looks_like_windows_1252_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,name\n1,caf\xe9\n")
    assert read_csv(path).rows["name"].tolist() == ["café"]
    rows = read_csv(path, UTF8).rows
    assert rows["name"].tolist() == ["caf\ufffd"]
    assert rows[PROBLEM].tolist() == ["row is not valid UTF-8 text (in name)"]


# --- decimal commas ---------------------------------------------------------------------------


def _french(text: str) -> str:
    """The rows a French spreadsheet saves: semicolons, coordinates with decimal commas."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    lat, lon = rows[0].index("latitude"), rows[0].index("longitude")
    writer.writerow(rows[0])
    for row in rows[1:]:
        row[lat], row[lon] = row[lat].replace(".", ","), row[lon].replace(".", ",")
        writer.writerow(row)
    return out.getvalue()


@pytest.mark.parametrize(
    ("saved", "shown"),
    [
        (lambda text: _french(text), "48,8"),  # decimal commas, semicolons
        (lambda text: _day_first(text), "17/07/2023"),  # an older export's dates
    ],
    ids=["decimal commas", "day-first dates"],
)
def test_a_spreadsheet_form_validates_as_the_bundled_file(
    tmp_path: Path, utf8_text: str, paris: City, saved: Callable[[str], str], shown: str
) -> None:
    reference, variant = tmp_path / "reference.csv", tmp_path / "variant.csv"
    reference.write_text(utf8_text, encoding="utf-8")
    variant.write_text(saved(utf8_text), encoding="utf-8")
    assert shown in variant.read_text(encoding="utf-8")
    expected = validate(read_csv(reference), DANSMARUE, paris)
    found = validate(read_csv(variant), DANSMARUE, paris)
    assert found.quarantine.empty
    pd.testing.assert_frame_equal(found.reports, expected.reports)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("48,8,5", "not a number: 48,8,5"),
        ("48,", "not a number: 48,"),
        (",5", "not a number: ,5"),
        ("1 234,5", "not a number: 1 234,5"),
        ("148,5", "out of range"),
    ],
)
def test_other_commas_are_not_numbers(tmp_path: Path, paris: City, cell: str, reason: str) -> None:
    header = "id_dmr,type,soustype,datedecl,latitude,longitude"
    path = tmp_path / "one.csv"
    path.write_text(
        f'{header}\nA1,Graffitis,Graffitis sur mur,2024-01-05,"{cell}",2.35\n', encoding="utf-8"
    )
    quarantine = validate(read_csv(path), DANSMARUE, paris).quarantine
    assert quarantine["field"].tolist() == ["latitude"]
    assert reason in quarantine["reason"].iloc[0]


# --- the command -------------------------------------------------------------------------------


def _dansmarue_import(folder: Path, name: str, *more: str) -> tuple[int, str]:
    """``voirie import NAME --format dansmarue`` run in ``folder``: exit code and output."""
    done = run_voirie(folder, "import", name, "--city", str(CITY), "--format", "dansmarue", *more)
    return done.returncode, done.stdout + done.stderr


def test_voirie_import_takes_a_french_spreadsheet_export(tmp_path: Path, utf8_text: str) -> None:
    """A Windows-1252, semicolon, decimal-comma export imports every row, says how it was
    read, and is the very rows of the UTF-8 export: importing that one next adds nothing."""
    data, _ = _as_spreadsheet_would(_french(utf8_text), "cp1252")
    (tmp_path / "excel.csv").write_bytes(data)
    (tmp_path / "utf8.csv").write_text(utf8_text, encoding="utf-8")
    code, said = _dansmarue_import(tmp_path, "excel.csv")
    assert code == 0, said
    assert "excel.csv: read as Windows-1252 text" in said
    assert f"imported                                 │ {ROWS}" in said, said
    assert "quarantined                              │ 0" in said, said
    code, said = _dansmarue_import(tmp_path, "utf8.csv")
    assert code == 0, said
    assert f"already imported (skipped)               │ {ROWS}" in said, said
    assert "read as" not in said


def test_voirie_import_says_to_name_the_encoding_when_bytes_are_not_utf8(
    tmp_path: Path, utf8_text: str
) -> None:
    """A file plain ASCII for its first MiB is read as UTF-8: later Windows-1252 rows are
    quarantined, the command says to name the encoding, and named, they import."""
    lines = utf8_text.splitlines(keepends=True)
    ascii_rows = [line for line in lines[1:] if line.isascii()]
    other = [line for line in lines[1:] if not line.isascii()][:50]
    padding = (1 << 20) // sum(map(len, ascii_rows)) + 1
    body = "".join(
        line.replace(",", f",{n}-", 1) for n in range(padding) for line in ascii_rows
    )  # new ids, the first MiB ASCII
    data = (lines[0] + body).encode("ascii") + "".join(other).encode("cp1252", "replace")
    (tmp_path / "late.csv").write_bytes(data)
    code, said = _dansmarue_import(tmp_path, "late.csv")
    assert code == 0, said
    assert "row: row is not valid UTF-8 text" in said
    assert "--encoding cp1252" in " ".join(said.split())
    code, said = _dansmarue_import(tmp_path, "late.csv", "--encoding", "cp1252")
    assert code == 0, said
    assert "quarantined                              │ 0" in said, said


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--format", "dansmarue", "--encoding", "klingon"), "unknown text encoding 'klingon'"),
        (("--format", "geojson", "--encoding", "latin-1"), "--encoding applies to CSV files"),
    ],
)
def test_a_wrong_encoding_option_is_refused_naming_it(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "r.csv").write_text("id\n", encoding="utf-8")
    result = run_voirie(tmp_path, "import", "r.csv", "--city", str(CITY), *args)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output
    assert message in output
    assert "--encoding" in output
    assert "Traceback" not in output


# --- Excel's "sep=" line, repeated column names ------------------------------------------------


def test_a_sep_line_names_the_delimiter_and_is_not_the_header(
    tmp_path: Path, utf8_text: str
) -> None:
    plain, hinted = tmp_path / "plain.csv", tmp_path / "hinted.csv"
    plain.write_text(_french(utf8_text), encoding="utf-8")
    hinted.write_text("sep=;\r\n" + _french(utf8_text), encoding="utf-8")
    pd.testing.assert_frame_equal(_cells(hinted), _cells(plain))
    assert len(_cells(hinted)) == ROWS
    # A header holding as many commas as semicolons: the sep= line decides.
    odd = tmp_path / "odd.csv"
    odd.write_text("sep=;\nid,name;note,s\n1,a;b\n", encoding="utf-8")
    assert read_csv(odd).columns == ["id,name", "note,s"]
    assert read_csv(odd).rows["note,s"].tolist() == ["b"]


def _with_a_second(text: str, column: str) -> str:
    """The rows with ``column`` given twice (its copy holding other text)."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    at = rows[0].index(column)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*rows[0], column])
    writer.writerows([*row, f"other {row[at]}"] for row in rows[1:])
    return out.getvalue()


def test_a_repeated_column_name_reads_as_pandas_names_it(tmp_path: Path, utf8_text: str) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(_with_a_second(utf8_text, "numero"), encoding="utf-8")
    table = read_csv(path)
    assert table.repeated == frozenset({"numero"})
    assert table.columns[-1] == "numero.1"
    assert (table.rows["numero.1"] == "other " + table.rows["numero"]).all()


@pytest.mark.parametrize(
    ("column", "code", "said"),
    [
        ("numero", 0, f"imported                                 │ {ROWS}"),  # not read
        ("adresse", 2, "error: column(s) 'adresse' named more than once in the header"),
    ],
)
def test_a_repeated_column_is_refused_only_when_the_mapping_reads_it(
    tmp_path: Path, utf8_text: str, column: str, code: int, said: str
) -> None:
    (tmp_path / "twice.csv").write_text(_with_a_second(utf8_text, column), encoding="utf-8")
    returned, output = _dansmarue_import(tmp_path, "twice.csv")
    assert returned == code, output  # voirie's errors: one line, exit code 2
    assert "Traceback" not in output
    assert said in output, output
    if code:
        assert [line for line in output.splitlines() if line.strip()][-1].startswith(said)


# --- dates as older exports wrote them ---------------------------------------------------------


def _day_first(text: str) -> str:
    """The rows with ``datedecl`` as an older DansMaRue export wrote it: dd/mm/yyyy."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    at = rows[0].index("datedecl")
    for row in rows[1:]:
        year, month, day = row[at].split("-")
        row[at] = f"{day}/{month}/{year}"
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def test_other_date_formats_are_tried_in_order_and_a_date_in_none_is_refused(
    tmp_path: Path, paris: City
) -> None:
    first = "Graffitis, tags, affiches et autocollants"
    service = "Graffitis et autocollants sur mur, façade sur rue, pont et descente d'eau pluviale"
    path = tmp_path / "r.csv"
    path.write_text(
        "id;cat;grp;when;lat;lon\n"
        f"a;{service};{first};2024-01-05 10:00;48.85;2.35\n"
        f"b;{service};{first};05/01/2024 10:00;48.85;2.35\n"
        f"c;{service};{first};January 5th;48.85;2.35\n",
        encoding="utf-8",
    )
    mapping = load_mapping_text(
        tmp_path,
        "source: s\nexternal_id: id\nlat: lat\nlon: lon\nrequested_at: when\n"
        "date_format: '%Y-%m-%d %H:%M'\nother_date_formats: ['%d/%m/%Y %H:%M']\n"
        "service_name: cat\ngroup_name: grp\n",
    )
    valid = validate(read_csv(path), mapping, paris)
    times = valid.reports.set_index("external_id")["requested_at"]
    assert times["a"] == times["b"] == pd.Timestamp("2024-01-05 09:00", tz="UTC")
    assert valid.quarantine[["field", "reason"]].values.tolist() == [
        ["when", "not a date: January 5th"]
    ]


def test_dates_as_counts_since_1970_read_with_the_epoch_formats(
    tmp_path: Path, paris: City
) -> None:
    """ArcGIS writes a GeoJSON's dates as milliseconds since 1970: ``epoch_ms`` reads them
    (``epoch``, seconds), and refuses what is not a count."""
    service = "Graffitis et autocollants sur mur, façade sur rue, pont et descente d'eau pluviale"
    point = {"type": "Point", "coordinates": [2.35, 48.85]}
    when = [1704445200000, "1704445200000", "2024-01-05"]
    features = [
        {
            "type": "Feature",
            "geometry": point,
            "properties": {
                "id": str(i),
                "cat": service,
                "grp": "Graffitis, tags, affiches et autocollants",
                "at": at,
            },
        }
        for i, at in enumerate(when)
    ]
    path = tmp_path / "arcgis.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    mapping = load_mapping_text(
        tmp_path,
        "source: s\nexternal_id: id\nlat: lat\nlon: lon\nrequested_at: at\n"
        "date_format: epoch_ms\nservice_name: cat\ngroup_name: grp\n",
    )
    valid = validate(read_geojson(path), mapping, paris)
    at = pd.Timestamp("2024-01-05 09:00", tz="UTC")
    assert valid.reports["requested_at"].tolist() == [at, at]
    assert valid.quarantine[["field", "reason"]].values.tolist() == [
        ["at", "not a date: 2024-01-05"]
    ]
    seconds = mapping.model_copy(update={"date_format": "epoch"})
    (tmp_path / "s.geojson").write_text(
        path.read_text().replace("1704445200000", "1704445200"), encoding="utf-8"
    )
    assert validate(read_geojson(tmp_path / "s.geojson"), seconds, paris).reports[
        "requested_at"
    ].tolist() == [at, at]


def load_mapping_text(folder: Path, text: str) -> ColumnMapping:
    """A mapping read from its YAML text, as ``--mapping`` reads a file."""
    (folder / "m.yaml").write_text(text, encoding="utf-8")
    return load_mapping(folder / "m.yaml")


# --- files that are no text ----------------------------------------------------------------


def _workbook(path: Path) -> None:
    """An .xlsx as Excel saves one: a zip archive of XML parts."""
    import zipfile

    with zipfile.ZipFile(path, "w") as book:
        book.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        book.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook/>')


@pytest.mark.parametrize(
    ("name", "write", "what"),
    [
        ("reports.xlsx", _workbook, "a zip archive (an Excel .xlsx"),
        (
            "reports.xls",
            lambda path: path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512)),
            "an Excel 97-2003 workbook (.xls)",
        ),
        ("reports.csv", lambda path: path.write_bytes(b"%PDF-1.7\n" + bytes(64)), "a PDF"),
        ("reports.csv", lambda path: path.write_bytes(b"id,x\n1," + bytes(64)), "binary data"),
    ],
)
def test_a_workbook_or_binary_file_is_refused_saying_what_it_is(
    tmp_path: Path, name: str, write: Callable[[Path], object], what: str
) -> None:
    write(tmp_path / name)
    code, said = _dansmarue_import(tmp_path, name)
    assert code == 2, said
    last = [line for line in said.splitlines() if line.strip()][-1]
    assert last.startswith(f"error: {name}: {what}"), said
    assert last.endswith("not a delimited text file: save it as CSV (UTF-8) and import that")


@pytest.mark.parametrize(
    ("name", "body", "fmt", "said"),
    [
        ("r.csv", '[{"service_request_id": "1"}]', "dansmarue", "JSON, not a delimited text file"),
        ("r.csv", '{\n  "type": "FeatureCollection"\n}', "csv", "give --format open311-json"),
        ("r.json", "id,name\n1,a\n", "open311-json", "a CSV file? give --format csv"),
        ("r.geojson", "id;name\n1;a\n", "geojson", "a CSV file? give --format csv"),
    ],
)
def test_a_file_given_the_wrong_format_says_which_one_it_is(
    tmp_path: Path, name: str, body: str, fmt: str, said: str
) -> None:
    (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "m.yaml").write_text(
        "source: s\nexternal_id: id\nlat: y\nlon: x\nrequested_at: t\nservice_code: c\n"
    )
    more = ("--mapping", "m.yaml") if fmt == "csv" else ()
    done = run_voirie(tmp_path, "import", name, "--city", str(CITY), "--format", fmt, *more)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    last = [line for line in output.splitlines() if line.strip()][-1]
    assert last.startswith(f"error: {name}: "), output
    assert said in " ".join(output.split())


def test_a_header_of_bracketed_names_is_a_header(tmp_path: Path) -> None:
    path = tmp_path / "sql.csv"
    path.write_text("[id],[name]\n1,a\n", encoding="utf-8")
    assert read_csv(path).columns == ["[id]", "[name]"]


def test_the_command_s_default_encoding_is_the_reader_s_auto() -> None:
    """``voirie.cli.data`` keeps its own copy (it imports no pipeline module at start)."""
    from voirie.cli import data
    from voirie.ingest import encoding

    assert data.AUTO == encoding.AUTO
