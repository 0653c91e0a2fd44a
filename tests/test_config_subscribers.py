from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from email_validator import EmailNotValidError, validate_email

from digest.config import subscribers as subscribers_file
from digest.config.subscribers import check_subscribers, load_subscribers, normalise_address
from digest.errors import ConfigError
from digest.models import Entry, Subscriber

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
defaults:
  format: html
  tags: []
subscribers:
  - email: ana@example.com
    name: 김민지
  - email: Bob@Example.ORG
    name: "Bob \\"the reader\\""
    tags: [Python, 여행]
  - email: text@example.com
    format: TEXT
    tags: travel
  - email: paused@example.com
    active: false
"""


@pytest.fixture(autouse=True, params=["libyaml", "pure"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with libyaml's parser (when PyYAML has it) and with the pure-Python one."""
    if request.param == "pure":
        monkeypatch.setattr(subscribers_file, "_LOADER", yaml.SafeLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML is built without libyaml here")
    return str(request.param)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subscribers.yaml"
    path.write_text(text, "utf-8")
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    subscribers = load_subscribers(write(tmp_path, GOOD))
    assert [s.email for s in subscribers] == [
        "ana@example.com",
        "Bob@example.org",  # the domain is normalised, the local part kept
        "text@example.com",
        "paused@example.com",
    ]
    ana, bob, text, paused = subscribers
    assert ana.name == "김민지" and ana.line == 5 and ana.format == "html" and ana.tags == ()
    assert bob.name == 'Bob "the reader"' and bob.tags == ("Python", "여행") and bob.line == 7
    assert text.format == "text" and text.tags == ("travel",)
    assert not paused.active and ana.active


def test_defaults_apply(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  format: text\n  tags: news\n  active: false\nsubscribers:\n"
        "  - email: a@example.com\n  - email: b@example.com\n    format: html\n    tags: []\n    active: true\n",
    )
    a, b = load_subscribers(path)
    assert (a.format, a.tags, a.active) == ("text", ("news",), False)
    assert (b.format, b.tags, b.active) == ("html", (), True)


def test_example_file_is_valid() -> None:
    subscribers, problems = check_subscribers(REPO / "subscribers.example.yaml")
    assert problems == []
    assert any(not s.name.isascii() for s in subscribers)
    assert any(s.format == "text" for s in subscribers)
    assert any(s.tags for s in subscribers)
    assert {s.language for s in subscribers} == {"en", "ko"}
    assert all(s.email.endswith(("@example.com", "@example.org")) for s in subscribers)


def test_empty_list_is_allowed(tmp_path: Path) -> None:
    assert load_subscribers(write(tmp_path, "subscribers:\n")) == ()
    assert load_subscribers(write(tmp_path, "subscribers: []\n")) == ()


@pytest.mark.parametrize(
    "text",
    [
        "subscribers:\n  - email: a@example.com\n    format: text\n  - {email: b@example.com, tags: [x, y]}\n"
        "defaults:\n"
        "  language: ko\n",  # the defaults after the list still apply to it
        "defaults: {language: ko}\nsubscribers: [{email: a@example.com, format: text}, {email: b@example.com, "
        "tags: [x, y]}]\n",
        "defaults:\n  language: ko\nsubscribers: &all\n  - email: a@example.com\n    format: !!str text\n"
        "  - email: b@example.com\n    tags: &t [x, y]\n",
        "---\ndefaults:\n  language: ko\nsubscribers:\n  - &a {email: a@example.com, format: text}\n  - email: "
        "'b@example.com'\n    tags:\n      - x\n      - y\n...\n",
    ],
)
def test_shapes_of_the_same_list(tmp_path: Path, text: str) -> None:
    a, b = load_subscribers(write(tmp_path, text))
    assert (a.email, a.format, a.language, a.tags) == ("a@example.com", "text", "ko", ())
    assert (b.email, b.format, b.language, b.tags) == ("b@example.com", "html", "ko", ("x", "y"))


def test_a_long_list_names_the_line_of_its_bad_entries(tmp_path: Path) -> None:
    lines = ["subscribers:\n"] + [f"  - email: reader{i}@example.com\n    name: Reader {i}\n" for i in range(3000)]
    lines[1234] = "  - email: reader1233@example\n    name: no top-level domain\n"
    lines[2500] = "  - email: READER7@example.com\n    name: listed twice\n"
    path = write(tmp_path, "".join(lines))
    subscribers, problems = check_subscribers(path)
    assert len(subscribers) == 2998
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (2 * 1234, "email"),
        (2 * 2500, "READER7@example.com is listed twice (first on line 16) (remove one of them)"),
    ]
    with pytest.raises(ConfigError) as caught:
        load_subscribers(path)
    assert str(caught.value).startswith(f"{path}:2468: email: 'reader1233@example' is not a valid email address")


BASE = "subscribers:\n  - email: first@example.com\n"  # line 2 is a good subscriber


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        (BASE + "  - email: not-an-address\n", 3, "not a valid email address", "ana@example.com"),
        (BASE + "  - email: a@b@example.com\n", 3, "not a valid email address", ""),
        (BASE + "  - email: 홍길동@example.com\n", 3, "not a valid email address", ""),
        (BASE + "  - email: FIRST@example.com\n", 3, "listed twice (first on line 2)", "remove one"),
        (BASE + "  - email: b@example.com\n    fromat: text\n", 4, "unknown key 'fromat'", "did you mean 'format'?"),
        (BASE + "  - email: b@example.com\n    colour: red\n", 4, "unknown key 'colour'", "allowed keys"),
        (BASE + "  - email: b@example.com\n    format: pdf\n", 4, "format: 'pdf' is not a format", "'html' or 'text'"),
        (BASE + "  - email: b@example.com\n    active: 'no'\n", 4, "is not true or false", "true or false"),
        (BASE + "  - email: b@example.com\n    tags: {a: 1}\n", 4, "is not a tag or a list", ""),
        (BASE + "  - email: b@example.com\n    language: Korean!\n", 4, "is not a language code", "'ko'"),
        (BASE + "  - email: b@example.com\n    name: [x]\n", 4, "name: ['x'] is not text", ""),
        (BASE + '  - email: b@example.com\n    name: "x\\r\\nBcc: evil@example.net"\n', 4, "control characters", ""),
        (BASE + "  - email: b@example.com\n    email: c@example.com\n", 4, "appears twice", ""),
        (BASE + "  - email: [b@example.com]\n", 3, "is not an email address", ""),
        (BASE + "  - name: No Address\n", 3, "without 'email'", "add 'email:"),
        (BASE + "  - just-a-string@example.com\n", 3, "must be a mapping", ""),
        (BASE + "subscriber: []\n", 3, "unknown key 'subscriber'", "did you mean 'subscribers'?"),
        ("defaults:\n  fromat: text\n" + BASE, 2, "unknown key 'fromat' in defaults", "did you mean"),
        ("defaults: html\n" + BASE, 1, "defaults must be a mapping", ""),
        ("defaults:\n  - format: text\n" + BASE, 2, "defaults must be a mapping", ""),
        ("colour: [red]\n" + BASE, 1, "unknown key 'colour' in the file", ""),
        ("defaults:\n  format: x\n" + BASE, 2, "is not a format", ""),
        ("subscribers: everyone\n", 1, "must be a list", ""),
        ("defaults: {}\n", 1, "no 'subscribers:' list", ""),
        ("- email: a@example.com\n", 1, "must be a mapping", "subscribers.example.yaml"),
        (BASE + "  - email: b@example.com\n   name: bad indent\n", 4, "not valid YAML", "indentation"),
        (BASE + "  - email: !custom b@example.com\n", 3, "not valid YAML: could not determine a constructor", ""),
        (BASE + "  - *nowhere\n", 3, "not valid YAML: found undefined alias", ""),
        (BASE + "---\nsubscribers: []\n", 3, "not valid YAML: but found another document", ""),
        (BASE + "  - email: b@example.com\ndefaults:\n  format: pdf\n", 5, "is not a format", ""),
    ],
)
def test_bad_input_names_the_line(tmp_path: Path, text: str, line: int, message: str, hint: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_subscribers(path)
    error = caught.value
    assert error.source == str(path)
    assert error.line == line
    assert message in error.message
    assert hint in error.hint
    assert str(error).startswith(f"{path}:{line}: ")
    subscribers, problems = check_subscribers(path)
    assert [(p.line, p.source) for p in problems][:1] == [(line, str(path))]
    assert message in problems[0].message


def test_check_reports_every_problem_and_keeps_the_good(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "subscribers:\n"
        "  - email: ok@example.com\n"
        "  - email: broken\n"
        "  - email: OK@example.com\n"
        "  - email: other@example.com\n"
        "    tgas: [x]\n"
        "  - email: fine@example.org\n",
    )
    subscribers, problems = check_subscribers(path)
    assert [s.email for s in subscribers] == ["ok@example.com", "fine@example.org"]
    assert [p.line for p in problems] == [3, 4, 6]
    assert "did you mean 'tags'?" in problems[2].message


@pytest.mark.parametrize("content", [b"\xff\xfe bad", None])
def test_unreadable_file(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "subscribers.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_subscribers(path)
    assert caught.value.source == str(path)
    _, problems = check_subscribers(path)
    assert len(problems) == 1


def entry(tags: tuple[str, ...] = (), categories: tuple[str, ...] = ()) -> Entry:
    return Entry(
        id="tag:example.com,2024-03-05:/posts/walk.md",
        title="walk",
        published_at=datetime(2024, 3, 5, tzinfo=UTC),
        url="https://example.com/walk/",
        source="posts/walk.md",
        body_html="<p>x</p>",
        summary_html="<p>x</p>",
        tags=tags,
        categories=categories,
    )


@pytest.mark.parametrize(
    ("filter_tags", "tags", "categories", "expected"),
    [
        ((), (), (), True),
        ((), ("python",), (), True),
        (("python",), ("Python",), (), True),
        (("PYTHON", "go"), (), ("python",), True),
        (("여행",), ("여행", "봄"), (), True),
        (("travel",), ("python",), ("notes",), False),
        (("travel",), (), (), False),
    ],
)
def test_wants(
    filter_tags: tuple[str, ...], tags: tuple[str, ...], categories: tuple[str, ...], expected: bool
) -> None:
    subscriber = Subscriber(email="a@example.com", tags=filter_tags)
    assert subscriber.wants(entry(tags, categories)) is expected


ADDRESSES = [
    "ana@example.com", "Bob@Example.ORG", "o'neil+news@mail.example.co.uk", "a.b-c_d@sub-domain.example",
    "x@xn--bcher-kva.example", "x@bücher.example", "POSTMASTER@example.com", "Abuse@Example.com", "a..b@example.com",
    ".a@example.com", "a.@example.com", "a@example", "a@-example.com", "a@example-.com", "a@exa_mple.com",
    "a@example.123", "a@localhost", "a@example.local", "a@example.test", "a@[192.0.2.1]", "a@192.0.2.1", "a@b@c.com",
    '"quoted"@example.com', "Ana <ana@example.com>", "홍길동@example.com", "a@example.com.", "a@.example.com",
    "a b@example.com", "", "@example.com", "a@", "l" * 64 + "@example.com", "l" * 65 + "@example.com",
    "a@" + "d" * 63 + ".com", "a@" + "d" * 64 + ".com", "a" * 64 + "@" + ".".join(["d" * 60] * 3) + ".com",
    "a" * 30 + "@" + ".".join(["d" * 61] * 3) + ".com", " spaced@example.com ", "tab\t@example.com",
    "a@EXAMPLE.COM", "a@ex--ample.com", "a@xn--ample.com", "a@xn--bcher-kva", "info@example.com",
]  # fmt: skip


@pytest.mark.parametrize("address", ADDRESSES)
def test_addresses_are_checked_as_email_validator_checks_them(address: str) -> None:
    try:
        result = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
        expected = str(result.ascii_email or result.normalized)
    except EmailNotValidError as exc:
        expected = f"is not a valid email address: {exc}"
    try:
        found = normalise_address(address)
    except ValueError as exc:
        found = str(exc)
    assert found == expected


# -- the plain shape, read without the YAML parser ------------------------------------------------------------


def read_both(monkeypatch: pytest.MonkeyPatch, path: Path) -> tuple[tuple[Subscriber, ...] | None, object]:
    """(what the plain reader makes of the file, None when it leaves it to the parser; what the YAML
    reader gives: the subscribers and the problems, or the error)."""
    plain = subscribers_file._read_plain(path.read_text("utf-8"))
    with monkeypatch.context() as patched:
        patched.setattr(subscribers_file, "_read_plain", lambda text: None)
        try:
            parsed: object = check_subscribers(path)
        except ConfigError as exc:
            parsed = str(exc)
    return plain, parsed


PLAIN = [
    GOOD.replace('"Bob \\"the reader\\""', '"Bob the reader"'),
    "subscribers:\n- email: a@example.com\n  name: A\n- email: b@example.com\n",  # the list at column 0
    "# a list\n\nsubscribers:\n    # comment\n    - email: a@example.com   \n\n      name:   Ana  Reader  \n",
    "defaults:\n    language: ko\n    tags: [a, b,]\nsubscribers:\n  - name: '  x  '\n    email: 'a@example.com'\n",
    "subscribers:\n  - email: a@example.com\n    active: Off\n  - email: b@example.com\n    active: YES",
    'subscribers:\n  - email: a@example.com\n    name: O\'Brien, "Kim" [x] {y} - z\n    tags: [ machine learning ]\n',
    "subscribers:\n  - email: a@example.com\n    name: 김민지 😀\n    tags: 여행\n    format: Text\n    language: ko\n",
    "subscribers:\r\n  - email: a@example.com\r\n",  # read_text makes every line end "\\n"
    Path(REPO / "subscribers.example.yaml").read_text("utf-8"),
]
NOT_PLAIN = [
    GOOD,  # an escape in a quoted name
    "subscribers:\n  - email: a@example.com  # a comment after a value\n",
    "subscribers:\n  - email: a@example.com\n    tags:\n      - x\n",
    "subscribers:\n  - {email: a@example.com}\n",
    "\ufeffsubscribers:\n  - email: a@example.com\n",
    "subscribers:\n  - email: a@example.com\n    name: Ana\n      Reader\n",
    "subscribers:\n  - email: a@example.com\n    name: 'it''s'\n",
    "subscribers:\n  - email: a@example.com\n    name: yes\n",
    "subscribers:\n  - email: a@example.com\n  - email: A@example.com\n",
    "---\nsubscribers:\n  - email: a@example.com\n",
    "subscribers:\n  - email: a@example.com\ndefaults:\n  language: ko\n",
]


@pytest.mark.parametrize("text", PLAIN)
def test_the_plain_reader_reads_as_the_parser_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    plain, parsed = read_both(monkeypatch, write(tmp_path, text))
    assert plain is not None and plain
    assert parsed == (plain, [])


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_the_plain_reader_leaves_the_rest_to_the_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    plain, _ = read_both(monkeypatch, write(tmp_path, text))
    assert plain is None


# What random files are made of: values that read as text, as other types, or not at all.
VALUES = [
    "Ada Reader", "김민지", "O'Brien", 'The "Reader"', "Kim, Ana", "a [b] {c}", "yes", "No", "on", "OFF", "true",
    "False", "null", "~", "123", "0o17", "0x1F", "1_000", "3.5", ".5", ".inf", "-1", "+1", "-", "- x", "2024-01-01",
    "=", "<<", "x:y", "x: y", "a #b", "a# b", "  padded  ", "html", "TEXT", "text", "ko", "en-US", "pt_BR", "!x",
    "&a", "*a", "@x", "`x", "%x", "|", ">", "?x", ", x", '"quoted"', "'single'", '"with \\" escape"', "'it''s'",
    '"a # b"', "''", '""', "[]", "[ ]", "[a, b]", "[a,]", "[a, , b]", "[yes, no]", "[x: y]", '["q", r]', "[1, 2]",
    "[여행]", "{a: 1}", "x\ty", "",
]  # fmt: skip
KEYS = ["email", "name", "tags", "format", "active", "language", "colour", "Email"]
FITTING = {
    "name": ["Ada Reader", "김민지", "O'Brien", "'Ana'", '"Bo"', "Kim, Ana"],
    "tags": ["[a, b]", "travel", "[]", "'x'", "[여행]"],
    "format": ["html", "TEXT", "'text'"],
    "active": ["true", "no", "On"],
    "language": ["ko", "en-US", '"ja"'],
}


def random_file(rng: random.Random) -> str:
    def value(key: str) -> str:
        if key in FITTING and rng.random() < 0.7:
            return rng.choice(FITTING[key])
        return rng.choice(VALUES) if rng.random() < 0.7 else rng.choice(["", " ", "  "]) + rng.choice(VALUES)

    def pair(keys: list[str]) -> str:
        key = rng.choice(keys)
        return f"{key}: {value(key)}"

    margin = " " * rng.choice([0, 2, 2, 2, 4])
    lines = []
    if rng.random() < 0.4:
        lines.append("defaults:")
        lines += [f"  {pair(KEYS[2:])}" for _ in range(rng.randint(0, 2))]
    lines.append(rng.choice(["subscribers:", "subscribers:", "subscribers: ", "subscribers: []"]))
    for n in range(rng.randint(0, 5)):
        email = rng.choice([f"r{n}@example.com", f"R{n}@Example.ORG", "r0@example.com", "not-an-address"])
        lines.append(f"{margin}- email: {email}" if rng.random() < 0.8 else f"{margin}- {pair(KEYS)}")
        for _ in range(rng.randint(0, 3)):
            shift = rng.choice([2, 2, 2, 2, 1, 3, 4])
            lines.append(f"{margin}{' ' * shift}{pair(KEYS[1:] if rng.random() < 0.9 else KEYS)}")
        if rng.random() < 0.2:
            lines.append(rng.choice(["", "# note", f"{margin}  # note", "      # note", "  ", "\t"]))
    text = "\n".join(lines) + rng.choice(["\n", "", "\n\n"])
    return text.replace("\n", "\r\n") if rng.random() < 0.03 else text


def test_random_files_read_as_the_parser_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(12)
    plain_files = 0
    for _ in range(400):
        path = write(tmp_path, random_file(rng))
        plain, parsed = read_both(monkeypatch, path)
        if plain is not None:
            plain_files += 1
            assert parsed == (plain, []), path.read_text("utf-8")
    assert plain_files >= 30  # the comparison above is not empty
