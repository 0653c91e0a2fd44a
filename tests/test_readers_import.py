"""`digest subscribers import` and `export` through the real command: sample exports written for these tests in
the header shapes of Mailchimp, Substack, Buttondown, listmonk and Ghost (tests/samples/imports/), each
recognised by its headers; consent decides who is active and who gets the confirmation mail (over SMTP to
aiosmtpd); --dry-run changes nothing; the summary counts; a second import is all unchanged; --map for other
files; and an export read back into a fresh store gives the same statuses and consent."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest import pipeline
from digest.cli import main
from digest.models import Status, Subscriber
from digest.sender.roster import Roster
from tests.support_service import SECRET, Mailbox, free_port, settings_for, smtp_box, write_site

__all__ = ["smtp_box"]

SAMPLES = Path(__file__).resolve().parent / "samples" / "imports"
NOW = "2026-11-23T09:00:00+09:00"
NOW_AT = datetime.fromisoformat(NOW)
MAP = "email=E-mail,name=Full name,consent=Opted in,tags=Interests"

# file -> (format, {address: (status, consent_at: an ISO time, "now" for the import's own time, or None)},
# invalid line numbers, --map)
IMPORTS: dict[str, tuple[str, dict[str, tuple[str, str | None]], list[int], str]] = {
    "mailchimp_subscribed.csv": (
        "mailchimp",
        {
            "hana.seo@example.com": ("active", "2024-03-02T08:12:05+00:00"),  # CONFIRM_TIME
            "minjun.ko@example.org": ("active", "2023-11-20T22:40:00+00:00"),  # single opt-in: OPTIN_TIME
            "owner.added@example.net": ("unconfirmed", None),  # no opt-in recorded
        },
        [5, 6],
        "",
    ),
    "mailchimp_unsubscribed.csv": ("mailchimp", {"left.long.ago@example.com": ("unsubscribed", None)}, [], ""),
    "mailchimp_cleaned.csv": ("mailchimp", {"dead.box@example.org": ("bounced", None)}, [], ""),
    "substack_email_list.csv": (
        "substack",
        {
            "free.reader@example.com": ("active", "2025-01-15T10:00:00+00:00"),
            "paying.reader@example.org": ("active", "2025-02-01T09:30:00+00:00"),
            "turned.off@example.net": ("unsubscribed", None),  # email_disabled
        },
        [5],
        "",
    ),
    "buttondown.csv": (
        "buttondown",
        {
            "reader.one@example.com": ("active", "2024-06-01T08:00:00+00:00"),
            "never.clicked@example.org": ("unconfirmed", None),  # unactivated
            "went.away@example.net": ("unsubscribed", None),
            "full.inbox@example.com": ("bounced", None),  # undeliverable
            "paying.one@example.org": ("active", "2024-06-05T08:00:00+00:00"),
        },
        [],
        "",
    ),
    "buttondown_legacy.csv": (
        "buttondown",
        {
            "early.reader@example.com": ("active", "2019-06-20T02:44:57+00:00"),
            "fake.signup@example.net": ("unsubscribed", None),  # spammy: never mailed
        },
        [],
        "",
    ),
    "listmonk_subscribers.csv": (
        "listmonk",
        {
            "jiwoo.han@example.com": ("active", "2024-05-01T09:30:00+00:00"),
            "blocked.one@example.org": ("unsubscribed", None),  # blocklisted
            "quiet.one@example.net": ("unconfirmed", None),  # disabled: no consent on record
        },
        [],
        "",
    ),
    "ghost_members.csv": (
        "ghost",
        {
            "yuna.park@example.com": ("active", "2023-09-13T04:05:06+00:00"),
            "muted.member@example.org": ("unsubscribed", None),
            "comped.friend@example.net": ("active", "2023-09-15T04:05:06+00:00"),
        },
        [],
        "",
    ),
    "other_tool.csv": (
        "mapped",
        {
            "seo.jin@example.com": ("active", "now"),  # "yes": consent, dated by the import
            "no.consent@example.org": ("unconfirmed", None),
            "dated.consent@example.net": ("active", "2024-04-04T04:04:04+00:00"),  # the column holds the date
        },
        [],
        MAP,
    ),
}
NAMES = sorted(IMPORTS)


def records(site: Path) -> list[Any]:
    return list(Roster(settings_for(site / "digest.toml").db_url).records(()))


def run(*args: str, now: str = NOW) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"DIGEST_NOW": now, "DIGEST_SECRET": SECRET})
    return result.exit_code, result.stdout, result.stderr


def make_site(root: Path, box: Mailbox, readers: tuple[str, ...] = ("author@example.org",)) -> Path:
    return write_site(root, [], list(readers), smtp_port=box.port).parent


def import_file(site: Path, name: str, *more: str) -> tuple[int, dict[str, Any]]:
    mapping = IMPORTS[name][3]
    args = ["subscribers", "import", str(SAMPLES / name), "--site", str(site), "--json", *more]
    code, out, err = run(*args, *(["--map", mapping] if mapping else []))
    assert out, err
    return code, json.loads(out)


def wait_mail(box: Mailbox, count: int) -> list[str]:
    """The recipients once `count` mails came (or 5 s passed), after a moment for any one too many."""
    deadline = time.monotonic() + 5
    while len(box.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return sorted(rcpt for rcpt, _ in box.received)


def unconfirmed_in(name: str) -> list[str]:
    return sorted(e for e, (status, _) in IMPORTS[name][1].items() if status == "unconfirmed")


@pytest.mark.parametrize("name", NAMES)
def test_each_export_is_recognised_and_imported_with_the_consent_it_records(
    tmp_path: Path, smtp_box: Mailbox, name: str
) -> None:
    fmt, expected, invalid, _ = IMPORTS[name]
    site = make_site(tmp_path, smtp_box)
    code, summary = import_file(site, name)
    unconfirmed = unconfirmed_in(name)
    assert code == (1 if invalid else 0)
    assert summary["format"] == fmt and summary["dry_run"] is False
    assert (summary["added"], summary["updated"], summary["unchanged"]) == (len(expected), 0, 0)
    assert summary["to_confirm"] == len(unconfirmed)
    assert [p["line"] for p in summary["invalid"]] == invalid
    settings = settings_for(site / "digest.toml")
    book = Roster(settings.db_url)
    for address, (status, consent_at) in expected.items():
        record = book.get(address)
        assert record is not None and record.status.value == status, address
        if status == "active":
            assert (record.consent_method, record.consent_source) == ("import", f"{name} ({fmt} export)")
            if consent_at == "now":  # the import's own time: DIGEST_NOW plus the time the process has run
                assert record.consent_at is not None and NOW_AT <= record.consent_at < NOW_AT + timedelta(hours=1)
            else:
                assert record.consent_at == datetime.fromisoformat(str(consent_at)).astimezone(UTC), address
        else:
            assert record.consent_at is None and record.consent_method == "", address
    left = {e for e, (status, _) in expected.items() if status in ("unsubscribed", "bounced", "complained")}
    assert left <= pipeline.suppressed(settings)
    # only those without recorded consent are mailed: the confirmation, nothing else
    assert wait_mail(smtp_box, len(unconfirmed)) == unconfirmed
    # and its button confirms them (the request is recorded whatever other lines the file holds)
    for address in unconfirmed:
        assert pipeline.confirm(settings, address, NOW_AT + timedelta(minutes=10)) == "confirmed", address


@pytest.mark.parametrize("name", NAMES)
def test_a_dry_run_counts_the_same_and_changes_nothing(tmp_path: Path, smtp_box: Mailbox, name: str) -> None:
    dry_site = make_site(tmp_path / "dry", smtp_box)
    code, dry = import_file(dry_site, name, "--dry-run")
    assert dry["dry_run"] is True
    assert records(dry_site) == []
    assert wait_mail(smtp_box, 0) == []
    real_site = make_site(tmp_path / "real", smtp_box)
    real_code, real = import_file(real_site, name)
    counts = ("format", "added", "updated", "unchanged", "to_confirm", "invalid")
    assert code == real_code and {k: dry[k] for k in counts} == {k: real[k] for k in counts}


@pytest.mark.parametrize("name", NAMES)
def test_importing_the_same_file_again_changes_nothing(tmp_path: Path, smtp_box: Mailbox, name: str) -> None:
    _, expected, invalid, _ = IMPORTS[name]
    site = make_site(tmp_path, smtp_box)
    import_file(site, name)
    mailed = wait_mail(smtp_box, len(unconfirmed_in(name)))
    assert mailed == unconfirmed_in(name)
    book = Roster(settings_for(site / "digest.toml").db_url)
    before = {r.email: r for r in list(book.records(()))}
    _, again = import_file(site, name)
    assert (again["added"], again["updated"], again["unchanged"], again["to_confirm"]) == (0, 0, len(expected), 0)
    assert [p["line"] for p in again["invalid"]] == invalid
    assert {r.email: r for r in list(book.records(()))} == before
    assert wait_mail(smtp_box, 0) == mailed


def test_known_subscribers_keep_their_status_and_only_empty_fields_are_filled(
    tmp_path: Path, smtp_box: Mailbox
) -> None:
    site = make_site(tmp_path, smtp_box)
    assert run("subscribers", "add", "hana.seo@example.com", "--site", str(site))[0] == 0
    assert run("subscribers", "add", "minjun.ko@example.org", "--name", "M. Ko", "--site", str(site))[0] == 0
    _, summary = import_file(site, "mailchimp_subscribed.csv")
    assert (summary["added"], summary["updated"], summary["unchanged"]) == (1, 1, 1)
    book = Roster(settings_for(site / "digest.toml").db_url)
    hana, minjun = book.get("hana.seo@example.com"), book.get("minjun.ko@example.org")
    assert hana is not None and (hana.name, hana.tags, hana.consent_method) == ("Hana Seo", ("ML", "reading"), "cli")
    assert minjun is not None and minjun.name == "M. Ko"


@pytest.mark.parametrize(
    ("args", "says", "exit_code"),
    [
        ((), ["other_tool.csv:1", "match no known export", "--map"], 1),
        (("--map", "E-mail"), ["error: --map 'E-mail' is not FIELD=COLUMN"], 2),
        (("--map", "email=mail,bogus=x"), ["error: --map 'bogus=x': 'bogus' is not a field digest knows"], 2),
        (("--map", "name=Full name"), ["error: --map needs email=COLUMN"], 2),
        (("--map", "email=Address"), ["other_tool.csv:1", "does not have", "e-mail"], 1),
    ],
)
def test_another_format_needs_a_mapping_and_a_bad_one_is_one_line(
    tmp_path: Path, smtp_box: Mailbox, args: tuple[str, ...], says: list[str], exit_code: int
) -> None:
    site = make_site(tmp_path, smtp_box)
    code, out, err = run("subscribers", "import", str(SAMPLES / "other_tool.csv"), "--site", str(site), *args)
    assert code == exit_code and out == ""
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    for part in says:
        assert part in line, line
    assert records(site) == []


def _store_with_every_status(site: Path) -> list[str]:
    """A store holding each status and each kind of consent, made the ways they come about."""
    settings = settings_for(site / "digest.toml")
    book = Roster(settings.db_url)
    at = NOW_AT - timedelta(days=30)
    pipeline.sync_subscribers(settings, at)  # from the file: author@ active, paused@ inactive
    for address in ("form.reader@example.com", "waiting@example.org"):
        pipeline.subscribe(settings, at, address, name="Form Reader", page="https://blog.example.org/subscribe/")
    assert pipeline.confirm(settings, "form.reader@example.com", at + timedelta(minutes=5)) == "confirmed"
    for address in ("cli.added@example.net", "left@example.com", "bounced@example.org", "angry@example.net"):
        book.add(Subscriber(address, "By Hand", ("ML",)), at, status=Status.ACTIVE, method="cli", source="cli")
    book.update_preferences("cli.added@example.net", at, language="ko", tags=["ML", "한글"], fmt="text", pause_weeks=3)
    pipeline.unsubscribe(settings, "left@example.com", at, "unsubscribe link")
    book.record_bounce("bounced@example.org", "hard", "5.1.1 no such user", at, soft_limit=5, soft_days=30)
    book.record_bounce("angry@example.net", "complaint", "abuse report", at, soft_limit=5, soft_days=30)
    return sorted(r.email for r in list(book.records(())))


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_an_export_read_into_a_fresh_store_gives_the_same_statuses_and_consent(
    tmp_path: Path, smtp_box: Mailbox, kind: str
) -> None:
    first = make_site(tmp_path / "first", smtp_box, ("author@example.org",))
    with (first / "subscribers.yaml").open("a", encoding="utf-8") as fh:
        fh.write("  - email: paused@example.com\n    active: false\n")
    everyone = _store_with_every_status(first)
    statuses = {r.status for r in records(first)}
    assert statuses == set(Status)  # every status is in the round trip
    exported = tmp_path / f"subscribers.{kind}"
    code, _, err = run("subscribers", "export", "--format", kind, "--output", str(exported), "--site", str(first))
    assert code == 0 and f"{len(everyone)} subscribers written" in err

    second = make_site(tmp_path / "second", smtp_box, ())
    shutil.copy(exported, tmp_path / "second" / exported.name)
    mailed = len(smtp_box.received)
    code, out, _ = run(
        "subscribers", "import", str(tmp_path / "second" / exported.name), "--site", str(second), "--json"
    )
    summary = json.loads(out)
    assert code == 0 and summary["format"] == "digest" and summary["added"] == len(everyone)
    # the one waiting to confirm had the confirmation mail from the first: none again (a moved list floods
    # nobody); they wait as they did, and are forgotten as they would have been
    assert len(smtp_box.received) == mailed and summary.get("confirmations", 0) == 0, summary

    def kept(site: Path) -> dict[str, tuple[Any, ...]]:
        return {
            r.email: (r.status, r.name, r.tags, r.language, r.format, r.consent_at, r.consent_method, r.consent_source)
            + (r.origin, r.created_at, r.paused_until)
            for r in records(site)
        }

    assert kept(second) == kept(first)
    again = run("subscribers", "import", str(tmp_path / "second" / exported.name), "--site", str(second), "--json")
    assert json.loads(again[1])["unchanged"] == len(everyone)


# -- the confirmation mail is never lost ---------------------------------------------------------------

PLAIN = "mail,who\nnew1@example.com,새 독자\nnew2@example.org,Second Reader\n"
PLAIN_OWED = ["new1@example.com", "new2@example.org"]


def plain_csv(root: Path) -> Path:
    path = root / "plain.csv"
    path.write_text(PLAIN, encoding="utf-8")
    return path


def run_env(env: dict[str, str | None], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"DIGEST_NOW": NOW, **env})
    return result.exit_code, result.stdout, result.stderr


def import_plain(site: Path, csv_file: Path, env: dict[str, str | None]) -> tuple[int, str, str]:
    args = ("subscribers", "import", str(csv_file), "--map", "email=mail,name=who", "--site", str(site), "--json")
    return run_env(env, *args)


@pytest.mark.parametrize(
    ("missing", "env", "says"),
    [
        ("the secret", {"DIGEST_SECRET": None}, "no secret for signed links (set the DIGEST_SECRET"),
        ("the SMTP server", {"DIGEST_SECRET": SECRET}, "cannot connect to the SMTP server"),
        ("a template", {"DIGEST_SECRET": SECRET}, "confirm"),
    ],
)
def test_what_the_confirmation_mail_needs_is_checked_before_the_store_changes(
    tmp_path: Path, smtp_box: Mailbox, missing: str, env: dict[str, str | None], says: str
) -> None:
    site = make_site(tmp_path, smtp_box)
    toml = site / "digest.toml"
    good = toml.read_text(encoding="utf-8")
    if missing == "the secret":  # links then point at the site, and only a mail needs the secret
        good = "\n".join(x for x in good.splitlines() if not x.startswith("public_url"))
        toml.write_text(good, encoding="utf-8")
    if missing == "the SMTP server":
        toml.write_text(good.replace(f"port = {smtp_box.port}", f"port = {free_port()}"), encoding="utf-8")
    if missing == "a template":
        (site / "templates").mkdir()
        (site / "templates" / "reader_mail.txt.j2").write_text("{% if confirm %}", encoding="utf-8")
        toml.write_text(good.replace("[output]", '[output]\ntemplates = "templates"'), encoding="utf-8")
    csv_file = plain_csv(tmp_path)
    code, out, err = import_plain(site, csv_file, env)
    assert code == 1 and out == "", out
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line and says in line, line
    assert records(site) == [] and wait_mail(smtp_box, 0) == []  # nothing stored, so nothing to forget
    # fixed and run again: everyone is added and mailed once; a third run mails nobody
    toml.write_text(good, encoding="utf-8")
    if missing == "a template":
        (site / "templates" / "reader_mail.txt.j2").unlink()
    code, out, err = import_plain(site, csv_file, {"DIGEST_SECRET": SECRET})
    summary = json.loads(out)
    assert code == 0 and (summary["added"], summary["to_confirm"], summary["confirmations"]) == (2, 2, 2), err
    assert wait_mail(smtp_box, 2) == PLAIN_OWED
    code, out, _ = import_plain(site, csv_file, {"DIGEST_SECRET": SECRET})
    assert json.loads(out)["confirmations"] == 0 and wait_mail(smtp_box, 0) == PLAIN_OWED


def _stop_after(site: Path, csv_file: Path, stage: str) -> None:
    """The store as an import killed at `stage` leaves it: its people stored and not mailed, or their mails
    also planned in the ledger and not sent."""
    from digest.sender.csvio import parse_mapping, read_csv

    settings = settings_for(site / "digest.toml")
    book = Roster(settings.db_url)
    fmt, rows, _ = read_csv(csv_file, parse_mapping("email=mail,name=who"))
    added, _, _, owed = book.apply_import(rows, NOW_AT, source=f"plain.csv ({fmt} export)", dry_run=False)
    assert (added, owed) == (2, PLAIN_OWED)
    if stage == "planned":
        assert book.plan_confirmations("confirm-killed", NOW_AT, settings.subscribe.unconfirmed_days) == 2


@pytest.mark.parametrize("stage", ["stored", "planned"])
@pytest.mark.parametrize("catch_up", ["import", "tick"])
def test_confirmations_an_import_still_owes_go_out_once(
    tmp_path: Path, smtp_box: Mailbox, stage: str, catch_up: str
) -> None:
    site = make_site(tmp_path, smtp_box)
    csv_file = plain_csv(tmp_path)
    _stop_after(site, csv_file, stage)
    assert wait_mail(smtp_box, 0) == []
    settings = settings_for(site / "digest.toml")
    later = NOW_AT + timedelta(minutes=5)
    for _ in range(2):  # the catch-up, then the same again: nothing more
        if catch_up == "import":
            code, out, err = import_plain(site, csv_file, {"DIGEST_SECRET": SECRET})
            assert code == 0 and json.loads(out)["unchanged"] == 2, err
        else:
            pipeline.readers_tick(settings, later, clock=lambda: later)
        assert wait_mail(smtp_box, 2) == PLAIN_OWED
    # the mail slot is taken: the form asking again within subscribe.confirm_interval_hours mails nothing
    assert pipeline.subscribe(settings, later, "new1@example.com").mail == ""
    record = Roster(settings.db_url).get("new2@example.org")
    assert record is not None and record.status == Status.UNCONFIRMED
    # the mail's link confirms
    link = next(m for r, m in smtp_box.received if r == "new2@example.org")
    assert "confirm?token=" in str(link.get_payload(0).get_payload(decode=True).decode())
    assert pipeline.confirm(settings, "new2@example.org", later) == "confirmed"


def test_a_deferred_confirmation_is_sent_by_a_later_tick_and_not_after_the_reader_confirmed(
    tmp_path: Path, smtp_box: Mailbox
) -> None:
    site = make_site(tmp_path, smtp_box)
    smtp_box.defer_rate = 1.0
    code, out, err = import_plain(site, plain_csv(tmp_path), {"DIGEST_SECRET": SECRET})
    assert code == 0 and json.loads(out)["confirmations"] == 0, err
    smtp_box.defer_rate = 0.0
    settings = settings_for(site / "digest.toml")
    assert pipeline.confirm(settings, "new1@example.com", NOW_AT + timedelta(minutes=1)) == "confirmed"  # by the form
    later = NOW_AT + timedelta(hours=2)
    assert pipeline.readers_tick(settings, later, clock=lambda: later).confirmations == 1
    assert wait_mail(smtp_box, 1) == ["new2@example.org"]
    assert pipeline.readers_tick(settings, later, clock=lambda: later).confirmations == 0


def test_a_repeated_address_is_reported_and_its_first_line_kept(tmp_path: Path, smtp_box: Mailbox) -> None:
    """An export holding one person twice (the case differs, or a later line says something else): the
    first line counts, each later one is named with its line, and the import still succeeds."""
    site = make_site(tmp_path / "site", smtp_box, ())
    export = tmp_path / "repeated.csv"
    export.write_text(
        '"Email Address","First Name",OPTIN_TIME,CONFIRM_TIME\n'
        'Minji@Example.org,Minji,"2024-03-02 08:11:40","2024-03-02 08:12:05"\n'
        'someone@example.net,Some,"2024-03-02 08:11:40","2024-03-02 08:12:05"\n'
        'minji@example.org,Other Name,"2024-03-05 08:11:40",\n',
        encoding="utf-8",
    )
    code, out, err = run("subscribers", "import", str(export), "--site", str(site), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["added"], summary["unchanged"], summary["invalid"]) == (2, 0, [])
    assert summary["repeated"] == [{"line": 4, "message": "minji@example.org repeats line 2: that line is kept"}]
    assert {r.email.lower(): (r.name, r.status) for r in records(site)}["minji@example.org"] == ("Minji", Status.ACTIVE)
    code, out, _ = run("subscribers", "import", str(export), "--site", str(site))
    assert code == 0 and f"repeated: {export}:4: minji@example.org repeats line 2" in out
    assert "added 0, updated 0, unchanged 2, invalid 0" in out  # the two people; the repeat apart


def test_an_address_a_reader_left_behind_is_not_imported_back_as_active(tmp_path: Path, smtp_box: Mailbox) -> None:
    """A reader changed address; the author imports an old export that still lists the old one with consent:
    it comes back as it left (unsubscribed, with the reason), so the reader does not get each issue twice."""
    site = make_site(tmp_path, smtp_box)
    settings = settings_for(site / "digest.toml")
    assert run("subscribers", "add", "hana.seo@example.com", "--site", str(site))[0] == 0
    assert pipeline.request_address_change(settings, "hana.seo@example.com", "hana@example.net", NOW_AT) == "sent"
    assert pipeline.change_address(settings, "hana.seo@example.com\nhana@example.net", NOW_AT) == "changed"
    code, summary = import_file(site, "mailchimp_subscribed.csv")
    assert summary["added"] == 3, code  # (the sample has two invalid lines too)
    book = Roster(settings.db_url)
    old, new = book.get("hana.seo@example.com"), book.get("hana@example.net")
    assert old is not None and old.status == Status.UNSUBSCRIBED
    assert "moved to hana@example.net" in old.events[-1].reason
    assert new is not None and new.status == Status.ACTIVE
    _, skipped = book.for_send(NOW_AT)
    assert skipped.get("hana.seo@example.com") == "unsubscribed" and "hana@example.net" not in skipped


def test_a_name_with_doubled_quotes_is_read_as_a_spreadsheet_writes_it(tmp_path: Path, smtp_box: Mailbox) -> None:
    """RFC 4180 quoting (a quote doubled inside a quoted field, a comma in it): the name is the spreadsheet's."""
    site = make_site(tmp_path, smtp_box)
    csv_file = tmp_path / "people.csv"
    csv_file.write_text('email,name,consent\na@example.com,"Doe, John ""JJ"" Smith",yes\n', "utf-8")
    args = [
        "subscribers",
        "import",
        str(csv_file),
        "--site",
        str(site),
        "--map",
        "email=email,name=name,consent=consent",
    ]
    code, _, err = run(*args)
    assert code == 0, err
    record = Roster(settings_for(site / "digest.toml").db_url).get("a@example.com")
    assert record is not None and record.name == 'Doe, John "JJ" Smith'


def test_a_language_that_is_none_is_an_invalid_line(tmp_path: Path, smtp_box: Mailbox) -> None:
    """A language column is checked as the subscribers file and `subscribers add` check it: `klingon!` or `zz`
    makes its line invalid (named, with the line number), the others are imported."""
    site = make_site(tmp_path, smtp_box)
    csv_file = tmp_path / "people.csv"
    rows = "email,consent,language\nok@example.com,yes,ko\nbad@example.com,yes,klingon!\nzz@example.com,yes,zz\n"
    csv_file.write_text(rows, "utf-8")
    args = ["subscribers", "import", str(csv_file), "--site", str(site), "--json"]
    code, out, err = run(*args, "--map", "email=email,consent=consent,language=language")
    summary = json.loads(out)
    assert code == 1 and summary["added"] == 1, (out, err)
    assert [i["line"] for i in summary["invalid"]] == [3, 4], summary["invalid"]
    assert "not a language code" in summary["invalid"][0]["message"]
    book = Roster(settings_for(site / "digest.toml").db_url)
    assert book.get("bad@example.com") is None and book.get("ok@example.com").language == "ko"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("status", "weird", "status: 'weird' is not a status"),
        ("format", "pdf", "format: 'pdf' is not a format"),
        ("consent_at", "yesterday", "consent_at: 'yesterday' is not a date"),
        ("paused_until", "notadate", "paused_until: 'notadate' is not a date"),
    ],
)
def test_a_value_of_this_tools_export_it_cannot_mean_is_an_invalid_line(
    tmp_path: Path, smtp_box: Mailbox, column: str, value: str, says: str
) -> None:
    """Guessed, `status=weird` was mailed a confirmation, `format=pdf` became html, a consent date of
    `yesterday` became the import's time (a consent record made up) and a pause was dropped."""
    site = make_site(tmp_path, smtp_box)
    header = "email,status,consent_method,consent_source,format,consent_at,paused_until"
    good = "ok@example.com,active,form,https://blog.example.org/,html,2026-01-02T03:04:05+00:00,"
    fields = dict(zip(header.split(","), good.split(","), strict=True)) | {"email": "odd@example.com", column: value}
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(f"{header}\n{good}\n{','.join(fields.values())}\n", "utf-8")
    mailed = len(smtp_box.received)
    code, out, _ = run("subscribers", "import", str(csv_file), "--site", str(site), "--json")
    summary = json.loads(out)
    assert code == 1 and summary["format"] == "digest" and summary["added"] == 1, summary
    assert [(i["line"], says in i["message"]) for i in summary["invalid"]] == [(3, True)], summary["invalid"]
    assert Roster(settings_for(site / "digest.toml").db_url).get("odd@example.com") is None
    assert len(smtp_box.received) == mailed
