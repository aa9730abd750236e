"""participants.tsv both ways (`brainlife.client.participants`): exact round trips and a clear
error, with its line, for every malformed table."""

from __future__ import annotations

import pytest

from brainlife.client.participants import (
    MAX_TSV_BYTES,
    ParticipantsTableError,
    format_tsv,
    parse_tsv,
)

BIDS = (
    "participant_id\tage\tsex\thandedness\tgroup\n"
    "sub-01\t34\tF\tright\tcontrol\n"
    "sub-02\tn/a\tM\tleft\tpatient\n"
    "sub-Zürich03\t27.5\tn/a\tambidextrous\tcontrol\n"
)


def test_a_bids_table_round_trips_byte_for_byte() -> None:
    rows = parse_tsv(BIDS.encode())
    assert rows[0] == {
        "subject": "01",
        "age": "34",
        "sex": "F",
        "handedness": "right",
        "group": "control",
    }
    assert list(rows[2]) == ["subject", "age", "sex", "handedness", "group"]
    assert format_tsv(rows) == BIDS


def test_crlf_a_bom_and_trailing_blank_lines_are_read() -> None:
    data = ("\ufeff" + BIDS.replace("\n", "\r\n") + "\r\n\r\n").encode()
    assert format_tsv(parse_tsv(data)) == BIDS


def test_the_id_column_as_the_official_cli_finds_it() -> None:
    rows = parse_tsv(b"age\tObservations\n30\tsub-05\n")
    assert rows == [{"subject": "05", "age": "30"}]
    rows = parse_tsv(b"id\tage\n07\t30\n")  # no known id column: the first one
    assert rows == [{"subject": "07", "age": "30"}]


def test_missing_values_are_written_as_n_a() -> None:
    text = format_tsv([{"subject": "1", "age": 30}, {"subject": "2", "sex": "F", "ok": True}])
    assert text == "participant_id\tage\tsex\tok\nsub-1\t30\tn/a\tn/a\nsub-2\tn/a\tF\ttrue\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no header line"),
        (b"\n\n", "no header line"),
        (b"participant_id\t\tage\nsub-1\t\t3\n", "line 1: column 2 has no name"),
        (b"participant_id\tage\tage\nsub-1\t1\t2\n", "line 1: column 'age' appears twice"),
        (b"participant_id\tage\nsub-1\t30\nsub-2\n", "line 3: 1 cells where the header has 2"),
        (b"participant_id\tage\nsub-1\t30\textra\n", "line 2: 3 cells"),
        (b"participant_id\tage\n\t30\n", "line 2: the participant id is empty"),
        (b"participant_id\tage\nsub-\t30\n", "line 2: the participant id is empty"),
        (b"participant_id\nsub-1\nsub-2\n1\n", "line 4: participant '1' is already on line 2"),
        (b"participant_id\tage\nsub-1\t\xff\n", "not UTF-8"),
    ],
)
def test_malformed_tables_say_what_and_where(data: bytes, message: str) -> None:
    with pytest.raises(ParticipantsTableError) as info:
        parse_tsv(data, "p.tsv")
    assert message in str(info.value)
    assert str(info.value).startswith("p.tsv")


def test_a_table_over_the_bound_is_refused() -> None:
    data = b"participant_id\n" + b"".join(b"sub-%07d\n" % i for i in range(MAX_TSV_BYTES // 10))
    assert len(data) > MAX_TSV_BYTES
    with pytest.raises(ParticipantsTableError, match="at most"):
        parse_tsv(data)
