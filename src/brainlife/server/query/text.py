"""`$text`: Mongo's text search, on the text fields a collection names (`Collection.text`).

Mongo matches a document holding ANY of the search's words, ALL of its quoted phrases and NONE
of its `-negated` words, case-insensitively. Its stemming and stop words need a language model;
here a word matches as a case-insensitive substring of a field (so `tract` finds `tractography`,
as stemming would, and more): a search finds at least what Mongo's finds. A search of negated
words only matches nothing, as in Mongo. `$language` and `$diacriticSensitive` are accepted and
ignored; `$caseSensitive: true` is refused (a case-sensitive substring test differs between
SQLite and PostgreSQL; nobody's client sends it).

Bounded like every find value: the search is at most `MAX_TEXT` characters and `MAX_TEXT_TERMS`
words and phrases (each is one LIKE per text field).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true

from brainlife.server.errors import BadRequest
from brainlife.server.query.values import Clause

#: characters of a `$text` search
MAX_TEXT = 1_000
#: words and phrases of a `$text` search
MAX_TEXT_TERMS = 32

_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')
_KEYS = frozenset(("$search", "$language", "$caseSensitive", "$diacriticSensitive"))


def text_clause(name: str, fields: tuple[Any, ...], arg: Any) -> Clause:
    """The clause of `{"$text": arg}` over `fields` of the collection `name`."""
    if not fields:
        raise BadRequest(f"find: $text: {name} cannot be searched by text (no text index)")
    if not isinstance(arg, dict) or "$search" not in arg:
        raise BadRequest('find: $text needs an object such as {"$search": "words"}')
    unknown = set(arg) - _KEYS
    if unknown:
        raise BadRequest(f"find: $text: unknown option {sorted(unknown)[0]}")
    search = arg["$search"]
    if not isinstance(search, str):
        raise BadRequest("find: $text: $search needs a string")
    if len(search) > MAX_TEXT:
        raise BadRequest(
            f"find: $text: $search has {len(search)} characters; at most {MAX_TEXT} are allowed"
        )
    if arg.get("$caseSensitive", False) is not False:
        raise BadRequest("find: $text: only case-insensitive search is supported")
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    for match in _TOKEN.finditer(search):
        negated, phrase, word = match.groups()
        if phrase is not None:
            if phrase.strip():
                (excluded if negated else phrases).append(phrase.strip())
        elif word.startswith("-") and len(word) > 1:
            excluded.append(word[1:])
        elif word != "-":
            words.append(word)
    if len(words) + len(phrases) + len(excluded) > MAX_TEXT_TERMS:
        raise BadRequest(f"find: $text: $search has more than {MAX_TEXT_TERMS} words and phrases")
    if not words and not phrases:
        return false()

    def anywhere(term: str) -> ColumnElement[bool]:
        return or_(
            *(
                func.lower(func.coalesce(field, "")).contains(term.lower(), autoescape=True)
                for field in fields
            )
        )

    clauses: list[Clause] = [anywhere(p) for p in phrases]
    if words:
        clauses.append(or_(*(anywhere(w) for w in words)))
    if excluded:
        clauses.append(not_(or_(*(anywhere(w) for w in excluded))))
    return and_(true(), *clauses)
