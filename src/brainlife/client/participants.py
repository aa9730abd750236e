"""A project's participants table as BIDS `participants.tsv` text, both ways.

`parse_tsv` reads what `bl project participants import` (and the official CLI's `bl project
update --participants`) sends: a header, then one row per participant; the id column is
`participant_id` (else `Observations`, else the first column, as the official CLI reads it) and
a `sub-` prefix is dropped (brainlife keeps bare labels: `"01"`). `format_tsv` writes the table
back: `participant_id` first (`sub-` + the label), then the other columns in their order, `n/a`
where a participant has no value. A BIDS participants.tsv (ids `sub-<label>`) therefore comes
back byte for byte (line endings normalised to `\\n`, one at the end).

A malformed file is refused whole, before anything is sent, with the line at fault: no header,
an empty or repeated column name, a row with more or fewer cells than the header, an empty or
repeated participant id, text that is not UTF-8, or more than `MAX_TSV_BYTES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brainlife.client._exceptions import BrainlifeError

#: the server takes request bodies up to 256 KiB; a table is sent as JSON (~ the TSV's size
#: plus the column names repeated per row), so the TSV is bounded well below that
MAX_TSV_BYTES = 100 * 1024
ID_COLUMNS = ("participant_id", "Observations")


class ParticipantsTableError(BrainlifeError):
    """A participants.tsv that cannot be read as a table."""

    code = "table"


def parse_tsv(data: bytes, name: str = "participants.tsv") -> list[dict[str, str]]:
    lines = _lines(data, name)
    header = _header(lines[0], name)
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), 0)
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise ParticipantsTableError(
                f"{name}, line {number}: {len(cells)} cells where the header has "
                f"{len(header)} (cells are separated by tabs)."
            )
        label = cells[id_col].strip()
        label = label[4:] if label.startswith("sub-") else label
        if not label:
            raise ParticipantsTableError(f"{name}, line {number}: the participant id is empty.")
        if label in seen:
            raise ParticipantsTableError(
                f"{name}, line {number}: participant {label!r} is already on line {seen[label]}."
            )
        seen[label] = number
        row = {"subject": label}
        row.update(
            {c: v for i, (c, v) in enumerate(zip(header, cells, strict=True)) if i != id_col}
        )
        rows.append(row)
    return rows


def _lines(data: bytes, name: str) -> list[str]:
    """The table's lines (any line ending; trailing blank lines dropped), the header first."""
    if len(data) > MAX_TSV_BYTES:
        raise ParticipantsTableError(
            f"{name} is {len(data)} bytes; a participants table may have at most "
            f"{MAX_TSV_BYTES} bytes."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParticipantsTableError(
            f"{name} is not UTF-8 text (byte {exc.start} cannot be read)."
        ) from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or not lines[0].strip():
        raise ParticipantsTableError(f"{name} has no header line (participant_id, …).")
    return lines


def _header(line: str, name: str) -> list[str]:
    """The column names: each named, none twice."""
    header = line.split("\t")
    for i, column in enumerate(header):
        if not column.strip():
            raise ParticipantsTableError(f"{name}, line 1: column {i + 1} has no name.")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ParticipantsTableError(f"{name}, line 1: column {repeated[0]!r} appears twice.")
    return header


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def format_tsv(subjects: Sequence[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in subjects:
        for key in row:
            if key != "subject" and key not in columns:
                columns.append(key)
    lines = ["\t".join(["participant_id", *columns])]
    for row in subjects:
        label = str(row.get("subject", ""))
        cells = [f"sub-{label}"] + [_cell(row[c]) if c in row else "n/a" for c in columns]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"
