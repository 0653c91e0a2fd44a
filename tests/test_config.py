from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import load_settings, read_site_config
from digest.errors import ConfigError
from tests.conftest import state_env

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "posts").mkdir()
    return tmp_path


def test_defaults_without_any_config(site: Path) -> None:
    settings = load_settings(site=site, env=state_env())
    assert settings.config_file is None
    assert settings.site.timezone == "UTC"
    assert settings.site.source_dirs == ((site / "posts").resolve(),)
    assert settings.site.base_url.endswith("/")
    assert settings.output.dir == site.resolve() / "_digest"
    assert settings.output.url == settings.site.base_url + "newsletter/"
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("digest.sqlite3")
    assert settings.smtp.host == ""  # Maildir outbox until SMTP is configured


def test_digest_toml_values(site: Path) -> None:
    write(
        site / "digest.toml",
        """
[site]
title = "노트"
url = "https://example.org/blog"
timezone = "Asia/Seoul"
week_start = "sunday"
week_start_hour = 6
[output]
dir = "public/news"
feed_issues = 3
[smtp]
host = "smtp.example.org"
username = "me"
""",
    )
    settings = load_settings(
        site=site, env={**state_env(), "DIGEST_SMTP_PASSWORD": "s3cret", "DIGEST_SECRET": "k" * 40}
    )
    assert settings.site.title == "노트"
    assert settings.site.base_url == "https://example.org/blog/"
    assert settings.site.week_start_day == 6 and settings.site.week_start_hour == 6
    assert settings.output.dir == site.resolve() / "public/news"
    assert settings.output.feed_issues == 3
    assert settings.smtp.password == "s3cret" and "s3cret" not in repr(settings.smtp)
    assert settings.secret == "k" * 40


@pytest.mark.parametrize(
    ("toml", "needle", "line"),
    [
        ("[site]\ntitel = 'x'\n", "unknown key 'titel' in [site] (did you mean 'title'?)", 2),
        ("[sight]\ntitle = 'x'\n", "unknown section [sight] (did you mean 'site'?)", 1),
        ("[site]\ntimezone = 'Mars/Olympus'\n", "site.timezone = 'Mars/Olympus' is not allowed (it must be an IANA", 2),
        ("[site]\nweek_start = 'someday'\n", "it must be one of monday", 2),
        ("[output]\nfeed_issues = 0\n", "output.feed_issues = 0 is not allowed", 2),
        ("[smtp]\nmode = 'tls'\n", "it must be one of starttls, ssl, plain", 2),
        ("[site]\nurl = 'example.org'\n", "it must be an absolute http(s) URL", 2),
        ("[schedule]\ntime = '25:00'\n", 'it must be a time "HH:MM"', 2),
        ("[site\ntitle = 1\n", "not valid TOML", 1),
    ],
)
def test_bad_config_names_file_key_and_line(site: Path, toml: str, needle: str, line: int) -> None:
    path = write(site / "digest.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_settings(site=site, env=state_env())
    text = str(info.value)
    assert needle in text
    assert text.startswith(f"{path}:{line}: ")


def test_plain_smtp_to_a_remote_host_needs_allow_plain(site: Path) -> None:
    write(site / "digest.toml", "[smtp]\nhost = 'mail.example.org'\nmode = 'plain'\n")
    with pytest.raises(ConfigError, match="allow_plain"):
        load_settings(site=site, env=state_env())
    write(site / "digest.toml", "[smtp]\nhost = 'mail.example.org'\nmode = 'plain'\nallow_plain = true\n")
    assert load_settings(site=site, env=state_env()).smtp.mode == "plain"


def test_missing_source_folder_is_a_config_error(site: Path) -> None:
    write(site / "digest.toml", "[site]\nsource = ['nowhere']\n")
    with pytest.raises(ConfigError, match="source folder 'nowhere' not found"):
        load_settings(site=site, env=state_env())


def test_config_flag_with_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(config=tmp_path / "nope.toml", env=state_env())


def test_jekyll_config_is_read(tmp_path: Path) -> None:
    write(
        tmp_path / "_config.yml",
        "title: 블로그\nurl: https://me.example.com\nbaseurl: /blog\ntimezone: Asia/Seoul\n"
        "permalink: pretty\nexclude: [README.md, 'vendor/*']\n",
    )
    (tmp_path / "_posts").mkdir()
    settings = load_settings(site=tmp_path, env=state_env())
    assert settings.site_config_file == tmp_path / "_config.yml"
    assert settings.site.title == "블로그"
    assert settings.site.base_url == "https://me.example.com/blog/"
    assert settings.site.timezone == "Asia/Seoul"
    assert settings.site.permalink == "/:categories/:year/:month/:day/:title/"
    assert settings.site.source_dirs == ((tmp_path / "_posts").resolve(),)
    import re

    assert any(re.search(p, "README.md") for p in settings.site.ignore)
    assert any(re.search(p, "vendor/x.md") for p in settings.site.ignore)
    assert not any(re.search(p, "_posts/2020-01-01-a.md") for p in settings.site.ignore)


@pytest.mark.parametrize("name", ["hugo.toml", "config.toml"])
def test_hugo_toml_config_is_read(tmp_path: Path, name: str) -> None:
    write(
        tmp_path / name,
        'baseURL = "https://hugo.example.net/"\ntitle = "Hugo"\ntimeZone = "Europe/Berlin"\n'
        'ignoreFiles = ["\\\\.bak$"]\n[permalinks]\nposts = "/:year/:month/:slug/"\n',
    )
    write(tmp_path / "content/posts/a.md", "+++\ntitle='a'\n+++\n")
    write(tmp_path / "content/posts/b.md", "+++\ntitle='b'\n+++\n")
    write(tmp_path / "content/about/index.md", "+++\ntitle='about'\n+++\n")
    settings = load_settings(site=tmp_path, env=state_env())
    assert settings.site.base_url == "https://hugo.example.net/"
    assert settings.site.timezone == "Europe/Berlin"
    assert settings.site.source_dirs == ((tmp_path / "content/posts").resolve(),)  # the biggest section
    assert settings.site.permalink == "/:year/:month/:slug/"
    assert settings.site.ignore == (r"\.bak$",)


def test_hugo_config_directory_is_read(tmp_path: Path) -> None:
    """Hugo's config/_default/ (root keys in hugo.toml, one key per other file, params.ko.toml for one
    language) with config/production/ over it, as `hugo` builds it; no root config file."""
    default = tmp_path / "config" / "_default"
    write(default / "hugo.toml", 'baseURL = "http://localhost:1313/"\ntitle = "Dir"\ntimeZone = "Asia/Seoul"\n')
    write(default / "languages.toml", '[en]\nweight = 1\n[ko]\nweight = 2\ntitle = "디렉터리"\n')
    write(default / "params.yaml", "description: A site configured in a folder\nmainSections: [notes]\n")
    write(default / "permalinks.toml", 'notes = "/n/:year/:slug/"\n')
    write(default / "menus.en.toml", "[[main]]\nname = 'Home'\nurl = '/'\n")
    write(tmp_path / "config" / "production" / "hugo.toml", 'baseURL = "https://dir.example.org/"\n')
    write(tmp_path / "config" / "development" / "hugo.toml", 'baseURL = "http://127.0.0.1:1313/"\n')
    write(tmp_path / "content/notes/a.md", "+++\ntitle='a'\ndate=2026-11-18\n+++\n")
    write(tmp_path / "content/notes/a.ko.md", "+++\ntitle='가'\ndate=2026-11-18\n+++\n")
    defaults = read_site_config(tmp_path)
    assert defaults.kind == "hugo" and defaults.file == default / "hugo.toml"
    settings = load_settings(site=tmp_path, env=state_env())
    assert settings.site.base_url == "https://dir.example.org/"
    assert (settings.site.title, settings.site.timezone) == ("Dir", "Asia/Seoul")
    assert settings.site.description == "A site configured in a folder"
    assert settings.site.source_dirs == ((tmp_path / "content/notes").resolve(),)
    assert settings.site.permalink == "/n/:year/:slug/"
    assert settings.site.generator.languages == ("en", "ko")
    assert dict(settings.site.generator.language_titles) == {"ko": "디렉터리"}


def test_a_broken_file_of_the_hugo_config_directory_is_named(tmp_path: Path) -> None:
    write(tmp_path / "config" / "_default" / "hugo.toml", 'title = "Dir"\n')
    write(tmp_path / "config" / "_default" / "params.toml", "description = \n")
    with pytest.raises(ConfigError) as info:
        load_settings(site=tmp_path, env=state_env())
    assert "params.toml" in str(info.value) and "cannot be parsed" in str(info.value)


def test_digest_toml_overrides_site_config(tmp_path: Path) -> None:
    write(tmp_path / "_config.yml", "title: Jekyll title\ntimezone: UTC\n")
    (tmp_path / "_posts").mkdir()
    write(tmp_path / "digest.toml", "[site]\ntimezone = 'Asia/Seoul'\n")
    settings = load_settings(site=tmp_path, env=state_env())
    assert settings.site.title == "Jekyll title"
    assert settings.site.timezone == "Asia/Seoul"


def test_broken_site_config_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "_config.yml", "title: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_settings(site=tmp_path, env=state_env())
    assert "_config.yml" in str(info.value) and "cannot be parsed" in str(info.value)


@pytest.mark.parametrize(
    ("corpus", "kind", "url"),
    [("wonwizard", "jekyll", "http://wonwizard.github.io/"), ("solus", "hugo", "https://getsol.us/")],
)
def test_real_site_configs(corpus: str, kind: str, url: str) -> None:
    root = SHARED / corpus
    if not root.is_dir():
        pytest.skip("../shared/corpus is absent")
    defaults = read_site_config(root)
    assert defaults.kind == kind
    assert defaults.url.rstrip("/") + "/" == url
    settings = load_settings(site=root, env=state_env())
    assert all(d.is_dir() for d in settings.site.source_dirs)


def test_example_site_loads() -> None:
    root = Path(__file__).resolve().parents[1] / "examples" / "site"
    settings = load_settings(site=root, env=state_env())
    assert settings.site.timezone == "Asia/Seoul"
    assert settings.subscribers == root / "subscribers.yaml"


def test_dkim_domain_defaults_to_the_from_domain(site: Path) -> None:
    write(site / "digest.toml", "[email]\nfrom = '노트 <news@mail.example.org>'\n")
    assert load_settings(site=site, env=state_env()).email.dkim_domain == "mail.example.org"
    write(site / "digest.toml", "[email]\nfrom = 'a@b.example'\ndkim_domain = 'example'\n")
    assert load_settings(site=site, env=state_env()).email.dkim_domain == "example"


@pytest.mark.parametrize(
    ("permalinks", "expected"),
    [
        ('[permalinks.page]\nposts = "/p/:slug/"\n', "/p/:slug/"),
        ('[permalinks]\npage = "/:slug/"\n', "/:path/"),  # not a table: ignored, Hugo's default
    ],
)
def test_hugo_permalinks_page_table(tmp_path: Path, permalinks: str, expected: str) -> None:
    write(tmp_path / "hugo.toml", 'baseURL = "https://h.example/"\n' + permalinks)
    write(tmp_path / "content/posts/a.md", "+++\ntitle='a'\n+++\n")
    assert load_settings(site=tmp_path, env=state_env()).site.permalink == expected


def test_delivery_keys_in_the_old_smtp_section_still_work_with_a_notice(site: Path) -> None:
    write(site / "digest.toml", "[smtp]\nconnections = 2\nrate_per_hour = 100\n[delivery]\nrate_per_hour = 50\n")
    settings = load_settings(site=site, env=state_env())
    assert settings.delivery.connections == 2
    assert settings.delivery.rate_per_hour == 50  # the new place wins
    assert len(settings.notices) == 2 and "[smtp] connections is now [delivery] connections" in settings.notices[0]
    write(site / "digest.toml", "[delivery]\nconnections = 3\n")
    assert load_settings(site=site, env=state_env()).notices == ()


def test_the_cli_prints_the_notice_once_on_stderr(site: Path) -> None:
    from click.testing import CliRunner

    from digest.cli import main

    (site / "posts" / "2026-11-17-a.md").write_text("---\ntitle: a\ndate: 2026-11-17\n---\nbody\n", "utf-8")
    write(site / "digest.toml", "[smtp]\nerror_budget = 9\n")
    result = CliRunner().invoke(main, ["publish", "--site", str(site)], env={"DIGEST_NOW": "2026-11-23T09:00:00+00:00"})
    assert result.exit_code == 0, result.output
    assert result.stderr.count("notice: ") == 1 and "[delivery] error_budget" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DIGEST_SECRET", "change-me-to-a-long-random-string"),  # the placeholder of an old compose file
        ("DIGEST_SECRET", "short"),
        ("DIGEST_SECRET", "x" * 31),
        ("DIGEST_SECRET", "replace me with your own secret please, thanks"),
        ("DIGEST_SECRET_OLD", "k" * 40 + ",tiny"),
    ],
)
def test_weak_secrets_are_refused_in_one_line(site: Path, variable: str, value: str) -> None:
    env = {**state_env(), "DIGEST_SECRET": "n" * 40, variable: value}
    with pytest.raises(ConfigError) as caught:
        load_settings(site=site, env=env)
    assert variable in str(caught.value) and "\n" not in str(caught.value)
    assert "token_urlsafe" in caught.value.hint


def test_retired_secrets_are_kept_for_verifying(site: Path) -> None:
    env = {**state_env(), "DIGEST_SECRET": "n" * 40, "DIGEST_SECRET_OLD": " o" * 20 + ", " + "p" * 33}
    settings = load_settings(site=site, env=env)
    assert settings.old_secrets == ((" o" * 20).strip(), "p" * 33)


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ("domain_rate_per_second = 5", "a table such as"),
        ('domain_rate_per_second = { "gmail.com" = 0 }', "a rate above 0"),
        ('domain_rate_per_second = { "not a domain" = 3 }', "domain names as keys"),
        ('domain_rate_per_hour = { "gmail.com" = 2.5 }', "a whole number"),
    ],
)
def test_domain_rates_are_checked(site: Path, table: str, needle: str) -> None:
    write(site / "digest.toml", f"[delivery]\n{table}\n")
    with pytest.raises(ConfigError, match=needle):
        load_settings(site=site, env=state_env())


def test_domain_rates_are_read(site: Path) -> None:
    write(
        site / "digest.toml",
        '[delivery]\ndomain_rate_per_second = { "Gmail.com" = 20, "outlook.com,hotmail.com" = 10 }\n',
    )
    assert load_settings(site=site, env=state_env()).delivery.domain_rate_per_second == (
        ("gmail.com", 20.0),
        ("outlook.com, hotmail.com", 10.0),
    )


def _state_cases() -> list[tuple[str, str, str, str]]:
    """(id, digest.toml, what exists beforehand, where the state folder must be)"""
    return [
        ("no url: named after the folder", "", "", "{home}/digest/{folder}-"),
        ("the public url names it", "[site]\nurl = 'https://notes.example.org/'\n", "",
         "{home}/digest/notes.example.org-newsletter"),
        ("output.url wins", "[site]\nurl = 'https://a.example.org/'\n[output]\nurl = 'https://b.example.org:8443/n/'\n",
         "", "{home}/digest/b.example.org-8443-n"),
        ("an existing old-default ledger is kept", "[site]\nurl = 'https://notes.example.org/'\n", ".digest",
         "{site}/.digest"),
        ("state.dir as written", "[state]\ndir = 'var/state'\n", ".digest", "{site}/var/state"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "made", "expected"), [c[1:] for c in _state_cases()], ids=[c[0] for c in _state_cases()]
)
def test_state_folder_default(
    site: Path, tmp_path_factory: pytest.TempPathFactory, toml: str, made: str, expected: str
) -> None:
    home = tmp_path_factory.mktemp("xdg")
    write(site / "digest.toml", toml)
    if made:
        (site / made).mkdir()
    settings = load_settings(site=site, env={"XDG_STATE_HOME": str(home)})
    want = expected.format(home=home, site=site.resolve(), folder=site.resolve().name)
    assert str(settings.state_dir).startswith(want)
    assert settings.outbox == settings.state_dir / "outbox"
    assert settings.db_url == f"sqlite:///{settings.state_dir / 'digest.sqlite3'}"
    if not made and "state" not in toml:
        # outside the site folder and so outside the output folder: never published, served or committed
        assert not settings.state_dir.is_relative_to(site.resolve())


def test_state_home_defaults_to_local_state(site: Path) -> None:
    settings = load_settings(site=site, env={"HOME": "/home/someone"})
    assert str(settings.state_dir).startswith("/home/someone/.local/state/digest/")


def test_two_copies_of_a_site_with_a_url_share_the_ledger(tmp_path: Path) -> None:
    folders = [tmp_path / "blog", tmp_path / "moved" / "blog-copy"]
    for folder in folders:
        write(folder / "digest.toml", "[site]\nurl = 'https://notes.example.org/'\n")
        (folder / "posts").mkdir()
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    first, second = (load_settings(site=f, env=env) for f in folders)
    assert first.state_dir == second.state_dir


def test_an_old_outbox_in_the_output_folder_gets_a_notice(site: Path) -> None:
    (site / "_digest" / "outbox" / "new").mkdir(parents=True)
    settings = load_settings(site=site, env=state_env())
    assert settings.outbox != site.resolve() / "_digest" / "outbox"
    assert any("_digest/outbox" in n and "move or delete" in n for n in settings.notices)
    write(site / "digest.toml", "[outbox]\nmaildir = '_digest/outbox'\n")
    assert load_settings(site=site, env=state_env()).notices == ()  # chosen on purpose: said nothing


def test_private_folders_are_private_and_ignored_by_git(tmp_path: Path) -> None:
    from digest.config import private_folder

    folder = private_folder(tmp_path / "a" / "state")
    assert (folder / ".gitignore").read_text() == "*\n"
    assert folder.stat().st_mode & 0o777 == 0o700
    (folder / ".gitignore").write_text("# mine\n")
    private_folder(folder)
    assert (folder / ".gitignore").read_text() == "# mine\n"


@pytest.mark.parametrize(
    "value",
    [
        "news@example.com",
        "Blog <news@example.com>",
        "서비스 시험 블로그 <digest@service.example.org>",
        "  Spaced   Name   <a.b+c@mail.example.net>  ",
        "<only@example.com>",
        "J. Doe <j@example.com>",  # "." is special in a display name: the email package reads it
        '"Quoted, Name" <q@example.com>',
        "Name (comment) <c@example.com>",
        "Ünïcode Näme <u@example.com>",
    ],
)
def test_a_configured_mailbox_reads_as_the_email_package_reads_it(value: str) -> None:
    """The plain shapes are read without the email package; the answer is the package's for every shape."""
    from email.message import EmailMessage
    from email.policy import SMTP

    from digest.config.checks import single_address

    probe = EmailMessage(policy=SMTP)
    probe["From"] = value.strip()
    (address,) = probe["From"].addresses
    assert single_address(value, "from") == (value.strip(), address.addr_spec)


@pytest.mark.parametrize("value", ["two@example.com, three@example.com", "Name <not an address>", "<a@b@c>"])
def test_a_configured_mailbox_that_is_not_one_address_is_refused(value: str) -> None:
    from digest.config.checks import single_address

    with pytest.raises(ConfigError, match="is not one email address"):
        single_address(value, "from")


@pytest.mark.parametrize(
    "value", ["news@Example.com", "Blog <news@mail.example.org>", "J. Doe <j@example.net>", "", "not an address"]
)
def test_the_domain_of_a_mailbox_is_the_email_packages(value: str) -> None:
    from email.utils import parseaddr

    from digest.config.checks import domain_of

    assert domain_of(value) == parseaddr(value)[1].rpartition("@")[2]


def _send(site: Path, home: Path, now: str, *args: str) -> tuple[int, str]:
    import os
    import subprocess
    import sys

    env = os.environ | {"XDG_STATE_HOME": str(home), "DIGEST_NOW": now}
    done = subprocess.run(
        [sys.executable, "-m", "digest.cli", *args, "--site", str(site)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def test_an_upgrade_and_a_changed_url_at_once_do_not_start_a_new_list(tmp_path: Path) -> None:
    """A state folder of a digest that did not yet record its newsletter (no made-for file) met together with
    a new URL: digest cannot tell it is this newsletter's, so it stops and says both ways out, rather than
    start an empty ledger that would mail the unsubscribed."""
    site, home = tmp_path / "blog", tmp_path / "state"
    config = write(site / "digest.toml", "[site]\ntitle = 'Moving Notes'\nurl = 'https://old.example.net/'\n")
    write(site / "posts" / "2026-11-10-first.md", "---\ntitle: First\ndate: 2026-11-10 10:00\n---\n\nFirst.\n")
    write(site / "subscribers.yaml", "subscribers:\n  - email: stays@example.com\n  - email: gone@example.com\n")
    assert _send(site, home, "2026-11-16T09:00:00+00:00", "send")[0] == 0
    assert _send(site, home, "2026-11-16T10:00:00+00:00", "unsubscribe", "gone@example.com")[0] == 0
    earlier = home / "digest" / "old.example.net-newsletter"
    (earlier / "made-for").unlink()  # as an older digest left it
    config.write_text(config.read_text().replace("old.example.net", "new.example.net"))
    write(site / "posts" / "2026-11-17-second.md", "---\ntitle: Second\ndate: 2026-11-17 10:00\n---\n\nSecond.\n")
    code, said = _send(site, home, "2026-11-23T09:00:00+00:00", "send")
    assert code == 1 and len(said.strip().splitlines()) == 1, said
    assert "holds the ledger of an older digest" in said and f'[state] dir = "{earlier}" in {config}' in said
    assert not (home / "digest" / "new.example.net-newsletter" / "digest.sqlite3").exists()
    config.write_text(config.read_text() + f'[state]\ndir = "{earlier}"\n')
    code, said = _send(site, home, "2026-11-23T09:00:00+00:00", "send")
    assert code == 0 and "sent 1" in said, said  # the one who left stays out
    assert (earlier / "made-for").read_text().strip() == str(config.resolve())  # marked now


def test_a_changed_url_does_not_start_a_new_list_without_the_unsubscribes(tmp_path: Path) -> None:
    """The default state folder is named after the newsletter's URL: after a change of URL digest refuses
    to start an empty ledger (which would mail the unsubscribed) and names the folder that holds the list."""
    site, home = tmp_path / "blog", tmp_path / "state"
    config = write(site / "digest.toml", "[site]\ntitle = 'Moving Notes'\nurl = 'https://old.example.net/'\n")
    write(site / "posts" / "2026-11-10-first.md", "---\ntitle: First\ndate: 2026-11-10 10:00\n---\n\nFirst.\n")
    write(site / "subscribers.yaml", "subscribers:\n  - email: stays@example.com\n  - email: gone@example.com\n")
    code, said = _send(site, home, "2026-11-16T09:00:00+00:00", "send")
    assert code == 0 and "sent 2" in said, said
    code, said = _send(site, home, "2026-11-16T10:00:00+00:00", "unsubscribe", "gone@example.com")
    assert code == 0, said
    earlier = home / "digest" / "old.example.net-newsletter"
    config.write_text(config.read_text().replace("old.example.net", "new.example.net"))
    write(site / "posts" / "2026-11-17-second.md", "---\ntitle: Second\ndate: 2026-11-17 10:00\n---\n\nSecond.\n")
    for command in (["send"], ["preview"], ["check"]):
        code, said = _send(site, home, "2026-11-23T09:00:00+00:00", *command)
        assert code == 1 and f'[state] dir = "{earlier}"' in said and len(said.strip().splitlines()) == 1, said
    assert not (home / "digest" / "new.example.net-newsletter" / "digest.sqlite3").exists()
    config.write_text(config.read_text() + f'[state]\ndir = "{earlier}"\n')
    code, said = _send(site, home, "2026-11-23T09:00:00+00:00", "send")
    assert code == 0 and "sent 1" in said, said  # the one still subscribed
    # another config of the same folder, with a URL of its own, is another newsletter: not refused
    other = write(site / "other.toml", "[site]\ntitle = 'Other'\nurl = 'https://other.example.net/'\n")
    code, said = _send(site, home, "2026-11-23T09:00:00+00:00", "--config", str(other), "check")
    assert "state dir" not in said, said


def test_a_toml_time_is_a_schedule_time_and_a_zone_in_the_wrong_case_is_named(site: Path) -> None:
    config = write(site / "digest.toml", "[schedule]\ntime = 09:30:00\n")
    assert load_settings(config, env=state_env()).schedule.time == "09:30:00"
    config.write_text('[site]\ntimezone = "asia/seoul"\n', "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env=state_env())
    assert "did you mean 'Asia/Seoul'?" in str(caught.value) and caught.value.line == 2
