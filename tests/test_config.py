"""pulsestack/config.py: defaults, config.toml, PULSESTACK_* overrides, and
one ConfigError naming the key (or file) for every bad value.

Also keeps config.toml (repo root) and docs/operations.md in step with SETTINGS.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pulsestack.config import SETTINGS, Config, ConfigError, load_config

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EMPTY = TESTS / "empty.toml"
REPO_CONFIG = ROOT / "config.toml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"


def value_of(config: Config, section: str, key: str):
    return getattr(getattr(config, section), key)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def setting(name: str):
    return next(s for s in SETTINGS if s.name == name)


# --- defaults, file, environment -------------------------------------------


def test_defaults_with_an_empty_file_and_no_environment():
    config = load_config(EMPTY, env={})
    for s in SETTINGS:
        assert value_of(config, s.section, s.key) == s.default, s.name
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.server.cors_origins == ()
    assert config.database.url == "sqlite:///./pulsestack.db"
    assert config.database.dialect == "sqlite"
    assert config.auth.open_registration is True
    assert config.log.level == "info"
    assert config.source == str(EMPTY)


def test_settings_are_declared_once_with_consistent_env_names():
    names = [s.name for s in SETTINGS]
    envs = [s.env for s in SETTINGS]
    assert len(set(names)) == len(names)
    assert len(set(envs)) == len(envs)
    for s in SETTINGS:
        assert s.env.startswith("PULSESTACK_"), s.name
        assert isinstance(s.default, s.type), s.name
        assert s.help.strip(), s.name


def test_toml_values_are_applied(tmp_path):
    path = write_toml(tmp_path, """
[server]
host = "0.0.0.0"
port = 9001
cors_origins = ["https://app.example.com", "http://localhost:3000"]

[database]
url = "postgresql://app:secret@db.example:5432/pulse"
pool_size = 25
sqlite_readers = 2
busy_timeout_ms = 100

[auth]
token_ttl_hours = 24
open_registration = false

[log]
level = "WARNING"
""")
    config = load_config(path, env={})
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 9001
    assert config.server.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert config.database.url == "postgresql://app:secret@db.example:5432/pulse"
    assert config.database.dialect == "postgres"
    assert config.database.pool_size == 25
    assert config.database.sqlite_readers == 2
    assert config.database.busy_timeout_ms == 100
    assert config.auth.token_ttl_hours == 24
    assert config.auth.open_registration is False
    assert config.log.level == "warning"
    assert config.source == str(path)


def test_a_partial_file_keeps_the_other_defaults(tmp_path):
    path = write_toml(tmp_path, "[server]\nport = 9002\n")
    config = load_config(path, env={})
    assert config.server.port == 9002
    for s in SETTINGS:
        if s.name != "server.port":
            assert value_of(config, s.section, s.key) == s.default, s.name


def test_environment_overrides_win_over_the_file(tmp_path):
    path = write_toml(tmp_path, """
[server]
host = "0.0.0.0"
port = 9001

[database]
url = "sqlite:///./from-file.db"

[auth]
open_registration = true

[log]
level = "error"
""")
    env = {
        "PULSESTACK_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "PULSESTACK_HOST": "::1",
        "PULSESTACK_PORT": "9100",
        "PULSESTACK_AUTH_OPEN_REGISTRATION": "false",
        "PULSESTACK_LOG_LEVEL": "DEBUG",
        "PULSESTACK_DATABASE_POOL_SIZE": "3",
    }
    config = load_config(path, env=env)
    assert config.database.url == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert config.database.dialect == "postgres"
    assert config.server.host == "::1"
    assert config.server.port == 9100
    assert config.auth.open_registration is False
    assert config.log.level == "debug"
    assert config.database.pool_size == 3


def test_every_setting_can_be_overridden_from_the_environment():
    overrides = {
        "server.host": ("0.0.0.0", "0.0.0.0"),
        "server.port": ("1234", 1234),
        "server.cors_origins": ("https://a.example, http://localhost:3000", ("https://a.example", "http://localhost:3000")),
        "database.url": ("sqlite:////tmp/other.db", "sqlite:////tmp/other.db"),
        "database.pool_size": ("7", 7),
        "database.sqlite_readers": ("9", 9),
        "database.busy_timeout_ms": ("0", 0),
        "auth.token_ttl_hours": ("1", 1),
        "auth.open_registration": ("off", False),
        "hub.flush_ms": ("10", 10),
        "hub.send_queue": ("4", 4),
        "hub.heartbeat_s": ("5", 5),
        "log.level": ("error", "error"),
        "retention.read_days": ("30", 30),
        "retention.all_days": ("365", 365),
        "fanout.chunk": ("7", 7),
        "server.trusted_proxies": ("10.0.0.0/8, 127.0.0.1", ("10.0.0.0/8", "127.0.0.1/32")),
        "log.format": ("JSON", "json"),
        "log.slow_query_ms": ("0", 0),
        "metrics.enabled": ("false", False),
        "metrics.port": ("9100", 9100),
    }
    assert set(overrides) == {s.name for s in SETTINGS}, "a new setting needs a line here"
    env = {setting(name).env: text for name, (text, _) in overrides.items()}
    config = load_config(EMPTY, env=env)
    for name, (_, expected) in overrides.items():
        section, key = name.split(".")
        assert value_of(config, section, key) == expected, name


@pytest.mark.parametrize("text, expected", [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("0", False), ("False", False), ("no", False), ("off", False),
])
def test_bools_from_the_environment(text, expected):
    config = load_config(EMPTY, env={"PULSESTACK_AUTH_OPEN_REGISTRATION": text})
    assert config.auth.open_registration is expected


@pytest.mark.parametrize("text, expected", [
    ("", ()),
    (" , ,", ()),
    ("https://app.example.com", ("https://app.example.com",)),
    (" https://a.example ,http://localhost:3000,, ", ("https://a.example", "http://localhost:3000")),
    # Scheme and host are lower-cased and a default port dropped: the form browsers send.
    ("HTTPS://App.Example.COM:443,http://LOCALHOST:80", ("https://app.example.com", "http://localhost")),
    ("http://127.0.0.1:8080,https://[::1]:8443", ("http://127.0.0.1:8080", "https://[::1]:8443")),
    ("https://a.example:0443", ("https://a.example",)),
    ("capacitor://localhost", ("capacitor://localhost",)),
    ("https://a.example,HTTPS://A.EXAMPLE", ("https://a.example",)),  # duplicates count once
])
def test_cors_origins_from_the_environment(text, expected):
    config = load_config(EMPTY, env={"PULSESTACK_CORS_ORIGINS": text})
    assert config.server.cors_origins == expected


def test_an_empty_cors_origins_variable_empties_the_files_list(tmp_path):
    path = write_toml(tmp_path, '[server]\ncors_origins = ["https://app.example.com"]\n')
    assert load_config(path, env={}).server.cors_origins == ("https://app.example.com",)
    assert load_config(path, env={"PULSESTACK_CORS_ORIGINS": ""}).server.cors_origins == ()


def test_unrelated_environment_variables_are_ignored():
    config = load_config(EMPTY, env={"PULSESTACK_NOT_A_SETTING": "x", "PORT": "1", "HOST": "nowhere"})
    assert config == load_config(EMPTY, env={})


def test_config_file_from_pulsestack_config_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "elsewhere.toml"
    path.write_text("[server]\nport = 9003\n", encoding="utf-8")
    config = load_config(None, env={"PULSESTACK_CONFIG": str(path)})
    assert config.server.port == 9003
    assert config.source == str(path)


def test_no_file_and_no_config_toml_in_cwd_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={})
    assert config.source == "defaults"
    for s in SETTINGS:
        assert value_of(config, s.section, s.key) == s.default, s.name


def test_config_toml_in_cwd_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text("[server]\nport = 9004\n", encoding="utf-8")
    assert load_config(None, env={}).server.port == 9004


def test_replace_changes_one_section_only():
    config = load_config(EMPTY, env={})
    other = config.replace(database={"url": "sqlite:////tmp/x.db"})
    assert other.database.url == "sqlite:////tmp/x.db"
    assert other.database.pool_size == config.database.pool_size
    assert other.server == config.server
    assert config.database.url == "sqlite:///./pulsestack.db"


# --- every bad value is a ConfigError naming the key -----------------------


def raises_naming(*needles: str, call):
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def test_port_not_a_number_in_toml(tmp_path):
    path = write_toml(tmp_path, '[server]\nport = "abc"\n')
    raises_naming("server.port", "abc", call=lambda: load_config(path, env={}))


def test_port_not_a_number_in_env():
    raises_naming("server.port", "PULSESTACK_PORT", "abc",
                  call=lambda: load_config(EMPTY, env={"PULSESTACK_PORT": "abc"}))


@pytest.mark.parametrize("port", ["65536", "-1", "100000"])
def test_port_out_of_range_in_env(port):
    raises_naming("server.port", call=lambda: load_config(EMPTY, env={"PULSESTACK_PORT": port}))


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_out_of_range_in_toml(tmp_path, port):
    path = write_toml(tmp_path, f"[server]\nport = {port}\n")
    raises_naming("server.port", "out of range", call=lambda: load_config(path, env={}))


@pytest.mark.parametrize("name, text", [
    ("database.pool_size", "0"),
    ("database.sqlite_readers", "65"),
    ("database.busy_timeout_ms", "-5"),
    ("auth.token_ttl_hours", "0"),
])
def test_other_numbers_out_of_range(name, text):
    s = setting(name)
    raises_naming(name, call=lambda: load_config(EMPTY, env={s.env: text}))


def test_unknown_database_scheme_in_env():
    raises_naming("database.url", "mysql",
                  call=lambda: load_config(EMPTY, env={"PULSESTACK_DATABASE_URL": "mysql://root@localhost/pulse"}))


def test_unknown_database_scheme_in_toml(tmp_path):
    path = write_toml(tmp_path, '[database]\nurl = "mysql://root@localhost/pulse"\n')
    raises_naming("database.url", "mysql", call=lambda: load_config(path, env={}))


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:///:memory:"])
def test_sqlite_url_without_a_path(url):
    raises_naming("database.url", call=lambda: load_config(EMPTY, env={"PULSESTACK_DATABASE_URL": url}))


def test_empty_database_url():
    raises_naming("database.url", call=lambda: load_config(EMPTY, env={"PULSESTACK_DATABASE_URL": ""}))


def test_unknown_section(tmp_path):
    path = write_toml(tmp_path, "[sever]\nport = 9000\n")
    raises_naming("sever", call=lambda: load_config(path, env={}))


def test_unknown_key(tmp_path):
    path = write_toml(tmp_path, "[server]\nprot = 9000\n")
    raises_naming("server.prot", call=lambda: load_config(path, env={}))


def test_key_in_the_wrong_section(tmp_path):
    path = write_toml(tmp_path, "[database]\nport = 9000\n")
    raises_naming("database.port", call=lambda: load_config(path, env={}))


@pytest.mark.parametrize("toml, name", [
    ("[server]\nport = 80.5\n", "server.port"),
    ("[server]\nport = true\n", "server.port"),
    ("[server]\nport = [8080]\n", "server.port"),
    ("[server]\nhost = 127\n", "server.host"),
    ('[server]\nhost = ""\n', "server.host"),
    ("[database]\nurl = 5\n", "database.url"),
    ("[auth]\nopen_registration = 1\n", "auth.open_registration"),
    ('[auth]\nopen_registration = "maybe"\n', "auth.open_registration"),
    ("[log]\nlevel = 10\n", "log.level"),
])
def test_wrong_toml_type(tmp_path, toml, name):
    path = write_toml(tmp_path, toml)
    raises_naming(name, call=lambda: load_config(path, env={}))


def test_section_that_is_not_a_table(tmp_path):
    path = write_toml(tmp_path, "server = 5\n")
    raises_naming("server", call=lambda: load_config(path, env={}))


@pytest.mark.parametrize("text", ["maybe", "", "2", "truthy"])
def test_bad_bool_from_env(text):
    raises_naming("auth.open_registration", "PULSESTACK_AUTH_OPEN_REGISTRATION",
                  call=lambda: load_config(EMPTY, env={"PULSESTACK_AUTH_OPEN_REGISTRATION": text}))


def test_bad_log_level_from_env():
    raises_naming("log.level", "verbose", call=lambda: load_config(EMPTY, env={"PULSESTACK_LOG_LEVEL": "verbose"}))


def test_bad_log_format_from_env():
    with pytest.raises(ConfigError, match=r"log.format: expected one of text, json, got 'xml'"):
        load_config(EMPTY, env={"PULSESTACK_LOG_FORMAT": "xml"})


@pytest.mark.parametrize("text, needle", [
    ("10.0.0.1/8", "has host bits set"),
    ("proxy.internal", "does not appear to be an IPv4 or IPv6"),
    ("10.0.0.0/33", "10.0.0.0/33"),
])
def test_bad_trusted_proxy_in_env(text, needle):
    with pytest.raises(ConfigError, match="server.trusted_proxies") as caught:
        load_config(EMPTY, env={"PULSESTACK_SERVER_TRUSTED_PROXIES": f"127.0.0.1, {text}"})
    assert needle in str(caught.value) and "PULSESTACK_SERVER_TRUSTED_PROXIES" in str(caught.value)


def test_metrics_port_may_not_be_the_server_port():
    with pytest.raises(ConfigError, match="metrics.port: 8080 is server.port"):
        load_config(EMPTY, env={"PULSESTACK_METRICS_PORT": "8080"})


def test_bad_log_level_from_toml(tmp_path):
    path = write_toml(tmp_path, '[log]\nlevel = "trace"\n')
    raises_naming("log.level", "trace", call=lambda: load_config(path, env={}))


@pytest.mark.parametrize("origin, needle", [
    ("example.com", "scheme://host[:port]"),
    ("localhost:3000", "scheme://host[:port]"),
    ("//example.com", "scheme://host[:port]"),
    ("https://", "scheme://host[:port]"),
    ("https://app.example.com/", "no path"),
    ("https://app.example.com/app", "no path"),
    ("https://app.example.com?x=1", "no path"),
    ("https://user:pw@app.example.com", "user name"),
    ("https://app.example.com:99999", "99999"),
    ("https://app.example.com:0", "out of range"),
    ("https://app.example.com:", "scheme://host[:port]"),
    ("https://bad host", "scheme://host[:port]"),
    ("*", "wildcard"),
    ("null", "null"),
    ("https://bücher.example", "punycode"),
])
def test_bad_cors_origin_in_env(origin, needle):
    raises_naming("server.cors_origins", "PULSESTACK_CORS_ORIGINS", repr(origin), needle,
                  call=lambda: load_config(EMPTY, env={"PULSESTACK_CORS_ORIGINS": f"https://fine.example,{origin}"}))


@pytest.mark.parametrize("toml, needle", [
    ('cors_origins = ["example.com"]', "scheme://host[:port]"),
    ('cors_origins = ["https://app.example.com/"]', "write https://app.example.com"),
    ('cors_origins = "https://app.example.com"', "list of strings"),
    ("cors_origins = [5]", "list of strings"),
    ('cors_origins = [""]', "scheme://host[:port]"),
])
def test_bad_cors_origins_in_toml(tmp_path, toml, needle):
    path = write_toml(tmp_path, f"[server]\n{toml}\n")
    raises_naming("server.cors_origins", str(path), needle, call=lambda: load_config(path, env={}))


def test_bad_env_value_is_reported_even_when_the_file_is_fine(tmp_path):
    path = write_toml(tmp_path, "[server]\nport = 9000\n")
    raises_naming("server.port", "PULSESTACK_PORT", call=lambda: load_config(path, env={"PULSESTACK_PORT": "nine"}))


def test_missing_explicit_config_file(tmp_path):
    missing = tmp_path / "nope.toml"
    raises_naming(str(missing), call=lambda: load_config(missing, env={}))


def test_missing_file_named_by_pulsestack_config(tmp_path):
    missing = tmp_path / "nope.toml"
    raises_naming(str(missing), call=lambda: load_config(None, env={"PULSESTACK_CONFIG": str(missing)}))


def test_unreadable_explicit_config_file(tmp_path):
    # A directory cannot be read as a file, whoever runs the tests (root included).
    directory = tmp_path / "a-directory.toml"
    directory.mkdir()
    raises_naming(str(directory), call=lambda: load_config(directory, env={}))


def test_invalid_toml(tmp_path):
    path = write_toml(tmp_path, "[server\nport = = 1\n")
    raises_naming(str(path), "TOML", call=lambda: load_config(path, env={}))


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --- config.toml and docs/operations.md stay in step with SETTINGS -----------


def _config_toml_layout(text: str) -> dict[str, tuple[str, list[str]]]:
    """{"section.key": (value text, comment lines just above it)} for config.toml."""
    layout: dict[str, tuple[str, list[str]]] = {}
    section = None
    comments: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            comments = []
            continue
        if line.startswith("#"):
            comments.append(line)
            continue
        m = re.fullmatch(r"\[([A-Za-z0-9_]+)\]", line)
        if m:
            section = m.group(1)
            comments = []
            continue
        m = re.fullmatch(r"([A-Za-z0-9_]+)\s*=\s*(.+)", line)
        assert m, f"config.toml: unexpected line {raw!r}"
        layout[f"{section}.{m.group(1)}"] = (m.group(2), comments)
        comments = []
    return layout


def test_repository_config_toml_gives_exactly_the_defaults():
    config = load_config(REPO_CONFIG, env={})
    defaults = load_config(EMPTY, env={})
    for s in SETTINGS:
        assert value_of(config, s.section, s.key) == s.default, s.name
    assert (config.server, config.database, config.auth, config.log) == \
        (defaults.server, defaults.database, defaults.auth, defaults.log)


def test_repository_config_toml_lists_every_setting_with_its_env_variable():
    layout = _config_toml_layout(REPO_CONFIG.read_text(encoding="utf-8"))
    assert set(layout) == {s.name for s in SETTINGS}, "config.toml and SETTINGS list different keys"
    for s in SETTINGS:
        _, comments = layout[s.name]
        assert comments, f"config.toml: {s.name} has no comment above it"
        assert any(s.env in c for c in comments), f"config.toml: the comment above {s.name} does not name {s.env}"


def test_operations_doc_lists_every_setting_and_env_variable():
    assert OPERATIONS_DOC.is_file(), f"{OPERATIONS_DOC} is missing"
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    missing = [item for s in SETTINGS for item in (s.name, s.env) if item not in text]
    assert not missing, f"docs/operations.md does not mention: {', '.join(missing)}"
