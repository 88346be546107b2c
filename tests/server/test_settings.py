"""Settings: sources, precedence, validation, redaction; the CLI's configuration errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from glmbridge_server import cli
from glmbridge_server.settings import Settings, SettingsError, load_settings, parse_dotenv


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path)
    assert s == Settings()
    assert (s.host, s.port, s.upstream) == ("127.0.0.1", 4567, "zai-coding")
    assert s.upstream_base_url == "https://api.z.ai/api/coding/paas/v4"
    assert (s.connect_timeout, s.idle_timeout, s.max_retries) == (10.0, 300.0, 2)
    assert (s.max_body_bytes, s.ping_interval, s.thinking) == (50 * 1024 * 1024, 10.0, "auto")
    assert s.api_keys == () and not s.mock


@pytest.mark.parametrize(
    ("profile", "url"),
    [
        ("zai-coding", "https://api.z.ai/api/coding/paas/v4"),
        ("zai", "https://api.z.ai/api/paas/v4"),
        ("bigmodel-coding", "https://open.bigmodel.cn/api/coding/paas/v4"),
        ("bigmodel", "https://open.bigmodel.cn/api/paas/v4"),
        ("zai-anthropic", "https://api.z.ai/api/anthropic"),
        ("bigmodel-anthropic", "https://open.bigmodel.cn/api/anthropic"),
        ("zai-auto", "https://api.z.ai/api/anthropic"),
        ("https://example.test/v1/", "https://example.test/v1"),
        ("http://127.0.0.1:9/x/chat/completions", "http://127.0.0.1:9/x"),
    ],
)
def test_upstream_profiles_and_urls(tmp_path: Path, profile: str, url: str) -> None:
    s = load_settings(environ={"GLMBRIDGE_UPSTREAM": profile}, cwd=tmp_path)
    assert s.upstream_base_url == url


def test_upstream_profiles_name_their_protocol(tmp_path: Path) -> None:
    s = load_settings(environ={"GLMBRIDGE_UPSTREAM": "zai-anthropic"}, cwd=tmp_path)
    assert s.upstream_profile.protocol == "anthropic"
    assert s.upstream_profile.auth_headers("k") == {"x-api-key": "k"}
    s = load_settings(environ={"GLMBRIDGE_UPSTREAM": "https://gw.example/v4"}, cwd=tmp_path)
    assert s.upstream_profile.protocol == "openai"
    assert s.upstream_profile.auth_headers("k") == {"authorization": "Bearer k"}


def test_relay_timeouts(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path)
    assert (s.first_output_timeout, s.commit_after) == (300.0, 5.0)
    env = {"GLMBRIDGE_FIRST_OUTPUT_TIMEOUT": "90", "GLMBRIDGE_COMMIT_AFTER": "0"}
    s = load_settings(environ=env, cwd=tmp_path)
    assert (s.first_output_timeout, s.commit_after) == (90.0, 0.0)
    with pytest.raises(SettingsError, match="first_output_timeout"):
        load_settings(environ={"GLMBRIDGE_FIRST_OUTPUT_TIMEOUT": "0"}, cwd=tmp_path)


def test_upstream_name_never_contains_credentials(tmp_path: Path) -> None:
    s = load_settings(environ={"GLMBRIDGE_UPSTREAM": "https://gw.example:8443/v4"}, cwd=tmp_path)
    assert s.upstream_name == "gw.example:8443"
    # user:password@ is refused outright (issue 13): it would replace the Bearer key.
    with pytest.raises(SettingsError, match="credentials") as info:
        load_settings(
            environ={"GLMBRIDGE_UPSTREAM": "https://user:pw@gw.example:8443/v4"}, cwd=tmp_path
        )
    assert "pw@" not in str(info.value)


def test_precedence_cli_over_env_over_file_over_dotenv(tmp_path: Path) -> None:
    write(
        tmp_path / ".env",
        "GLMBRIDGE_PORT=1001\nGLMBRIDGE_HOST=10.0.0.1\nGLMBRIDGE_LOG_LEVEL=error\n"
        "GLMBRIDGE_PING_INTERVAL=3\n",
    )
    config = write(tmp_path / "c.toml", 'port = 1002\nhost = "10.0.0.2"\nlog_level = "warning"\n')
    env = {"GLMBRIDGE_PORT": "1003", "GLMBRIDGE_HOST": "10.0.0.3", "GLMBRIDGE_CONFIG": str(config)}
    s = load_settings({"port": "1004"}, environ=env, cwd=tmp_path)
    assert s.port == 1004  # flag
    assert s.host == "10.0.0.3"  # environment
    assert s.log_level == "warning"  # config file
    assert s.ping_interval == 3.0  # .env
    assert s.idle_timeout == 300.0  # default


def test_real_environment_wins_over_dotenv(tmp_path: Path) -> None:
    write(tmp_path / ".env", 'export ZAI_API_KEY="from-dotenv"\n')
    assert load_settings(environ={}, cwd=tmp_path).api_keys == ("from-dotenv",)
    assert load_settings(environ={"ZAI_API_KEY": "real"}, cwd=tmp_path).api_keys == ("real",)


def test_dotenv_can_name_the_config_file(tmp_path: Path) -> None:
    config = write(tmp_path / "g.toml", "max_retries = 5\n")
    write(tmp_path / ".env", f"GLMBRIDGE_CONFIG={config}\n")
    assert load_settings(environ={}, cwd=tmp_path).max_retries == 5


def test_cli_config_flag_beats_env_config(tmp_path: Path) -> None:
    a = write(tmp_path / "a.toml", "max_retries = 3\n")
    b = write(tmp_path / "b.toml", "max_retries = 4\n")
    s = load_settings({"config": str(b)}, environ={"GLMBRIDGE_CONFIG": str(a)}, cwd=tmp_path)
    assert s.max_retries == 4


def test_key_pool_from_comma_separated_env(tmp_path: Path) -> None:
    s = load_settings(environ={"ZAI_API_KEY": " k1 , k2,,k1,k3 "}, cwd=tmp_path)
    assert s.api_keys == ("k1", "k2", "k3")


def test_empty_env_variable_counts_as_unset(tmp_path: Path) -> None:
    write(tmp_path / ".env", "ZAI_API_KEY=dot\n")
    assert load_settings(environ={"ZAI_API_KEY": ""}, cwd=tmp_path).api_keys == ("dot",)


def test_full_toml_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "full.toml",
        """
host = "127.0.0.2"
port = 9999
upstream = "zai"
api_keys = ["a.1", "b.2"]
auth_token = "tok"
log_level = "debug"
log_format = "json"
connect_timeout = 2.5
idle_timeout = 60
max_retries = 0
max_body_bytes = 2048
ping_interval = 1
thinking = "disabled"

[models]
opus = "glm-5.1"
sonnet = "glm-4.7"
haiku = "glm-4.5-air"
""",
    )
    s = load_settings({"config": str(config)}, environ={}, cwd=tmp_path)
    assert s.api_keys == ("a.1", "b.2") and s.auth_token == "tok"
    assert s.models == {"opus": "glm-5.1", "sonnet": "glm-4.7", "haiku": "glm-4.5-air"}
    assert (s.port, s.log_format, s.idle_timeout, s.max_retries) == (9999, "json", 60.0, 0)
    assert (s.max_body_bytes, s.thinking, s.upstream_name) == (2048, "disabled", "zai")


def test_models_from_environment(tmp_path: Path) -> None:
    s = load_settings(
        environ={"GLMBRIDGE_MODELS": "opus=glm-5.1, haiku = glm-4.5-air"}, cwd=tmp_path
    )
    assert s.models == {"opus": "glm-5.1", "haiku": "glm-4.5-air"}


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"GLMBRIDGE_PORT": "http"}, "invalid port = 'http' from environment (GLMBRIDGE_PORT)"),
        ({"GLMBRIDGE_PORT": "70000"}, "between 0 and 65535"),
        ({"GLMBRIDGE_UPSTREAM": "zai-codin"}, "invalid upstream = 'zai-codin' from environment"),
        ({"GLMBRIDGE_LOG_LEVEL": "loud"}, "log_level"),
        ({"GLMBRIDGE_IDLE_TIMEOUT": "-1"}, "idle_timeout"),
        ({"GLMBRIDGE_THINKING": "maybe"}, "must be one of auto, enabled, disabled"),
        ({"GLMBRIDGE_MODELS": "opus"}, "alias=model"),
        ({"GLMBRIDGE_MODELS": "opus=gpt-4"}, "'gpt-4' is not a model"),
        ({"GLMBRIDGE_MODELS": "vision=glm-4.7"}, "not a vision model"),
    ],
)
def test_invalid_env_values_name_key_and_source(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env, cwd=tmp_path)
    assert needle in str(info.value)


def test_invalid_file_value_names_file_and_key(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", 'max_retries = "many"\n')
    with pytest.raises(SettingsError) as info:
        load_settings({"config": str(config)}, environ={}, cwd=tmp_path)
    assert f"config file {config} (max_retries)" in str(info.value)


def test_unknown_file_key_is_an_error(tmp_path: Path) -> None:
    config = write(tmp_path / "typo.toml", "prot = 1\n")
    with pytest.raises(SettingsError, match="unknown key.*prot"):
        load_settings({"config": str(config)}, environ={}, cwd=tmp_path)


def test_missing_and_malformed_config_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings({"config": str(tmp_path / "nope.toml")}, environ={}, cwd=tmp_path)
    bad = write(tmp_path / "bad.toml", "port = = 1\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings({"config": str(bad)}, environ={}, cwd=tmp_path)


def test_invalid_secret_is_reported_without_its_value(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"ZAI_API_KEY": "good,bad key-SECRET"}, cwd=tmp_path)
    assert "SECRET" not in str(info.value)
    assert "key #2" in str(info.value) and "ZAI_API_KEY" in str(info.value)


def test_repr_redacts_keys_and_token() -> None:
    s = Settings(api_keys=("sk.SECRET1", "sk.SECRET2"), auth_token="TOKENSECRET")
    for text in (repr(s), str(s), f"{s}", str(s.redacted())):
        assert "SECRET" not in text
    assert "2 key(s)" in repr(s)


def test_parse_dotenv() -> None:
    text = "# c\n\nA=1\nexport B='two words'\nC=\"q\"\nD=x # comment\nnot a line\nE=\n"
    assert parse_dotenv(text) == {"A": "1", "B": "two words", "C": "q", "D": "x", "E": ""}


def test_cli_configuration_error_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GLMBRIDGE_PORT", "not-a-port")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "port" in err and "GLMBRIDGE_PORT" in err


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--no-such-flag"]) == 2


def test_cli_port_in_use_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["--port", str(port), "--mock"]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_upstream_pins(tmp_path: Path) -> None:
    """``[upstreams]`` pins GLM models to a profile (TOML table or env pairs)."""
    from glmbridge_server.settings import route_table

    env = {"GLMBRIDGE_UPSTREAMS": "glm-4.5-air=zai-coding, glm-5*=zai-anthropic"}
    s = load_settings(environ=env, cwd=tmp_path)
    assert s.upstreams == {"glm-4.5-air": "zai-coding", "glm-5*": "zai-anthropic"}
    assert route_table(s.models, s.upstreams).upstreams == s.upstreams
    with pytest.raises(SettingsError, match="upstreams"):
        load_settings(environ={"GLMBRIDGE_UPSTREAMS": "glm-4.7=nowhere"}, cwd=tmp_path)
    config = write(tmp_path / "glmbridge.toml", '[upstreams]\n"glm-4.6v" = "zai-coding"\n')
    s = load_settings({"config": str(config)}, environ={}, cwd=tmp_path)
    assert s.upstreams == {"glm-4.6v": "zai-coding"}
