"""resolve_route and RouteTable: table-driven."""
# The case tables keep one case per line, so long lines are expected here.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.profiles import PROFILES
from glmbridge.routing import (
    DEFAULT_MODELS,
    DEFAULT_ROUTE_TABLE,
    ModelSpec,
    RouteTable,
    model_info,
    normalize_model_name,
    offered,
    resolve_route,
)
from glmbridge.served import ServedAs

IMAGE = ir.ImageBlock(source=ir.MediaSource(type="url", url="https://example.com/a.png"))
VIDEO = ir.VideoBlock(source=ir.MediaSource(type="url", url="https://example.com/a.mp4"))


def user(*blocks: ir.Block) -> ir.Message:
    return ir.Message(role="user", content=list(blocks) or [ir.TextBlock(text="hi")])


def assistant(text: str = "ok") -> ir.Message:
    return ir.Message(role="assistant", content=[ir.TextBlock(text=text)])


def req(model: str, *messages: ir.Message) -> ir.Request:
    return ir.Request(model=model, messages=list(messages) or [user()])


def tool_result(*content: ir.ContentBlock) -> ir.ToolResultBlock:
    return ir.ToolResultBlock(tool_use_id="toolu_1", content=list(content))


# (case, request, override, expected model, expected reason)
CASES: list[tuple[str, ir.Request, str | None, str, str]] = [
    ("opus dated", req("claude-opus-4-5-20251101"), None, "glm-5.3", "alias:*opus*"),
    ("sonnet", req("claude-sonnet-4-5"), None, "glm-5.3", "alias:*sonnet*"),
    ("sonnet 1m suffix", req("claude-sonnet-4-5[1m]"), None, "glm-5.3", "alias:*sonnet*"),
    ("haiku latest", req("claude-3-5-haiku-latest"), None, "glm-5.3-flash", "alias:*haiku*"),
    ("upper-case glm", req("GLM-4.6"), None, "glm-4.6", "passthrough"),
    ("glm with suffix", req("glm-4.5-air[1m]"), None, "glm-4.5-air", "passthrough"),
    ("unknown glm", req("glm-9"), None, "glm-9", "passthrough"),
    ("unknown name", req("gpt-4o"), None, "glm-5.3", "default"),
    ("empty name", req(""), None, "glm-5.3", "default"),
    ("image in current turn", req("claude-sonnet-4-5", user(ir.TextBlock(text="see"), IMAGE)), None, "glm-5.3-flash", "vision"),
    ("video in current turn", req("claude-sonnet-4-5", user(VIDEO)), None, "glm-5.3-flash", "vision"),
    ("image in tool_result", req("claude-opus-4-5", user(), assistant(), user(tool_result(IMAGE))), None, "glm-5.3-flash", "vision"),
    ("image only earlier", req("claude-opus-4-5", user(IMAGE), assistant(), user()), None, "glm-5.3", "alias:*opus*"),
    ("prefill after image turn", req("claude-opus-4-5", user(IMAGE), assistant("{")), None, "glm-5.3-flash", "vision"),
    ("vision model keeps itself", req("glm-5.3-flash", user(IMAGE)), None, "glm-5.3-flash", "passthrough"),
    ("explicit glm text model + image", req("glm-4.6", user(IMAGE)), None, "glm-5.3-flash", "vision"),
    ("override wins", req("claude-3-5-haiku-latest"), "GLM-4.6", "glm-4.6", "override"),
    ("override wins over media", req("claude-sonnet-4-5", user(IMAGE)), "glm-4.6", "glm-4.6", "override"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "override", "model", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_resolve_route(request_: ir.Request, override: str | None, model: str, reason: str) -> None:
    route = resolve_route(request_, override=override)
    assert (route.model, route.reason) == (model, reason)
    assert route.spec.id == model  # none of these is answered by another model on the plan


def test_unknown_glm_gets_a_conservative_spec() -> None:
    spec = resolve_route(req("GLM-9-Ultra")).spec
    assert spec == ModelSpec(id="glm-9-ultra", context_window=131072, max_output=16384)
    assert not spec.vision


def test_media_routing_can_be_disabled() -> None:
    table = RouteTable.from_mapping({"route_media": False})
    route = resolve_route(req("claude-sonnet-4-5", user(IMAGE)), table)
    assert route.model == "glm-5.3"


@pytest.mark.parametrize(
    ("model", "ctx", "out", "vision", "thinking", "tool_stream"),
    [
        ("glm-5.3", 1_048_576, 131072, False, "always", True),
        ("glm-5.3-flash", 1_048_576, 131072, True, "always", False),
        ("glm-5.3-flashx", 1_000_000, 131072, True, "always", False),
        ("glm-5.3-highspeed", 1_048_576, 131072, False, "always", True),
        ("glm-5.2", 1_000_000, 131072, False, "auto", True),
        ("glm-5.1", 204800, 131072, False, "auto", True),
        ("glm-5-turbo", 202752, 131072, False, "auto", True),
        ("glm-4.7", 204800, 131072, False, "hybrid", True),
        ("glm-4.6", 204800, 131072, False, "auto", True),
        ("glm-4.5-air", 131072, 98304, False, "auto", False),
        ("glm-4-32b-0414-128k", 131072, 16384, False, "none", False),
        ("glm-4.6v", 131072, 32768, True, "auto", False),
        ("glm-4.5v", 65536, 16384, True, "hybrid", False),
    ],
)
def test_default_model_table(
    model: str, ctx: int, out: int, vision: bool, thinking: str, tool_stream: bool
) -> None:
    spec = DEFAULT_MODELS[model]
    assert (spec.context_window, spec.max_output, spec.vision, spec.thinking, spec.tool_stream) == (
        ctx, out, vision, thinking, tool_stream,
    )  # fmt: skip


def test_default_table_lists_every_documented_model() -> None:
    assert set(DEFAULT_MODELS) == {
        "glm-5.1", "glm-5", "glm-5-turbo", "glm-4.7", "glm-4.7-flash", "glm-4.7-flashx",
        "glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-airx", "glm-4.5-flash",
        "glm-4-32b-0414-128k", "glm-4.6v", "glm-4.6v-flash", "glm-4.6v-flashx", "glm-4.5v",
        "glm-5v-turbo", "glm-5.3", "glm-5.3-flash", "glm-5.3-flashx", "glm-5.2", "glm-5.3-highspeed",
    }  # fmt: skip
    assert all(spec.id == key for key, spec in DEFAULT_MODELS.items())
    assert all(spec.vision for spec in DEFAULT_MODELS.values() if spec.video)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("GLM-4.6", "glm-4.6"), (" claude-sonnet-4-5[1m] ", "claude-sonnet-4-5"), ("a[x][y]", "a[x]")],
)
def test_normalize_model_name(raw: str, expected: str) -> None:
    assert normalize_model_name(raw) == expected


def test_config_merge_alias_override_and_extra_model() -> None:
    table = RouteTable.from_mapping(
        {
            "aliases": {"opus": "glm-5.1", "claude-sonnet-4-5*": "my-model"},
            "models": {
                "my-model": {"context_window": 1000, "max_output": 100, "vision": True},
                "glm-4.7": {"max_output": 65536},
            },
            "default_model": "GLM-4.6",
        }
    )
    assert table.aliases[:2] == [("*opus*", "glm-5.1"), ("claude-sonnet-4-5*", "my-model")]
    assert ("*opus*", "glm-5.3") not in table.aliases  # replaced, not shadowed
    assert ("*haiku*", "glm-5.3-flash") in table.aliases  # built-ins kept
    assert resolve_route(req("claude-opus-4-5"), table).model == "glm-5.1"
    assert resolve_route(req("claude-sonnet-4-5-20250929"), table).model == "my-model"
    assert resolve_route(req("claude-sonnet-4"), table).model == "glm-5.3"
    assert resolve_route(req("mystery"), table).model == "glm-4.6"
    assert table.models["glm-4.7"].max_output == 65536
    assert table.models["glm-4.7"].thinking == "hybrid"  # other fields kept
    # The built-in table is untouched.
    assert DEFAULT_ROUTE_TABLE.models["glm-4.7"].max_output == 131072
    assert "my-model" not in DEFAULT_MODELS
    # A model the config adds is passed through by name, and it has vision.
    route = resolve_route(req("my-model", user(IMAGE)), table)
    assert (route.model, route.reason) == ("my-model", "passthrough")


def test_config_aliases_as_list_of_pairs() -> None:
    table = RouteTable.from_mapping({"aliases": [["*", "glm-4.5"]]})
    assert resolve_route(req("claude-opus-4-5"), table).model == "glm-4.5"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_map": {}}, "unknown key(s) ['model_map']"),
        ({"models": []}, "routing.models: expected a mapping"),
        (
            {"models": {"x": {"context_window": 1}}},
            "routing.models.x: Object missing required field `max_output`",
        ),
        (
            {"models": {"glm-4.7": {"thinking": "sometimes"}}},
            "routing.models.glm-4.7: Invalid enum value 'sometimes'",
        ),
        ({"models": {"glm-4.7": {"id": "other"}}}, "id 'other' differs from its key"),
        ({"models": {"glm-4.7": 5}}, "routing.models.glm-4.7: expected a mapping"),
        ({"aliases": {"opus": "claude-x"}}, "routing.aliases.*opus*: 'claude-x' is not a model"),
        ({"aliases": {"": "glm-4.7"}}, "pattern '' must be a non-empty string"),
        ({"aliases": {"opus": 3}}, "routing.aliases.opus: expected a model id string"),
        ({"aliases": "opus"}, "routing.aliases: expected a mapping or a list"),
        ({"default_model": "gpt-4o"}, "routing.default_model: 'gpt-4o' is not a model"),
        ({"vision_model": "glm-4.7"}, "routing.vision_model: 'glm-4.7' is not a vision model"),
        ({"route_media": "yes"}, "routing.route_media: expected true or false"),
    ],
)
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        RouteTable.from_mapping(config)
    assert message in str(info.value)


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="must be a mapping"):
        RouteTable.from_mapping(["models"])  # type: ignore[arg-type]


def test_routing_is_pure() -> None:
    request_ = req("claude-sonnet-4-5", user(IMAGE))
    assert resolve_route(request_) == resolve_route(request_)
    assert request_.model == "claude-sonnet-4-5"


# --- models per upstream profile (issue 11) ----------------------------------------------------


def test_model_info_resolves_client_names() -> None:
    assert model_info("claude-opus-4-5-20251101[1m]").id == "glm-5.3"
    assert model_info("claude-sonnet-4-5").context_window == 1_048_576
    assert model_info("glm-5.3[1m]").context_window == 1_048_576
    haiku = model_info("claude-haiku-4-5-20251001")  # Claude Code's hard-coded summariser
    assert (haiku.id, haiku.context_window, haiku.max_output) == ("glm-5.3-flash", 1_048_576,
                                                                   131072)  # fmt: skip
    assert model_info("GLM-5.2").max_output == 131072
    assert model_info("glm-9").context_window == 131072  # unknown: conservative
    assert model_info("claude-3-opus-20240229", RouteTable.from_mapping(
        {"aliases": {"opus": "glm-4.6"}})).id == "glm-4.6"  # fmt: skip


def test_every_default_target_is_served_by_the_coding_plan() -> None:
    coding = PROFILES["zai-coding"]
    targets = {t for _, t in DEFAULT_ROUTE_TABLE.aliases}
    targets |= {DEFAULT_ROUTE_TABLE.default_model, DEFAULT_ROUTE_TABLE.vision_model}
    assert all(coding.serves(t) for t in targets), targets


@pytest.mark.parametrize("profile", ["zai-coding", "bigmodel-coding", "zai-auto"])
@pytest.mark.parametrize("media", [IMAGE, VIDEO])
def test_media_on_the_coding_plan_go_to_a_vision_model_it_serves(
    profile: str, media: ir.Block
) -> None:
    route = resolve_route(req("claude-sonnet-4-5", user(media)), upstream=PROFILES[profile])
    assert route.model == "glm-5.3-flash" and route.reason == "vision"
    assert route.upstream.serves(route.model) and route.upstream.protocol == "openai"


def test_video_on_pay_as_you_go_goes_to_a_video_model() -> None:
    zai = PROFILES["zai"]
    assert resolve_route(req("claude-sonnet-4-5", user(IMAGE)), upstream=zai).model == (
        "glm-5.3-flash")  # fmt: skip
    # GLM-5.3-Flash reads video ("image/video/text/file": docs.z.ai/guides/vlm/glm-5.3-flash)
    assert resolve_route(req("claude-sonnet-4-5", user(VIDEO)), upstream=zai).model == (
        "glm-5.3-flash")  # fmt: skip
    table = RouteTable.from_mapping({"vision_model": "glm-4.5v"})
    assert resolve_route(req("claude-sonnet-4-5", user(VIDEO)), table, upstream=zai).model == (
        "glm-4.5v")  # fmt: skip
    assert resolve_route(req("glm-4.5v", user(IMAGE)), upstream=zai).model == "glm-4.5v"


@pytest.mark.parametrize("model", ["glm-4.6v", "glm-4.7-flashx", "glm-4.5v", "glm-4.5-flash"])
def test_a_model_outside_the_coding_plan_is_a_clear_client_error(model: str) -> None:
    with pytest.raises(ClientRequestError) as info:
        resolve_route(req(model), upstream=PROFILES["zai-coding"])
    message = str(info.value)
    assert info.value.path == "model"
    assert model in message and "zai-coding" in message and "GLM Coding Plan" in message
    assert "glm-5.3" in message  # what it serves instead
    # served elsewhere: pay-as-you-go, or pinned by the configuration
    assert resolve_route(req(model), upstream=PROFILES["zai"]).model == model
    pinned = RouteTable.from_mapping({"upstreams": {model: "zai"}})
    assert resolve_route(req(model), pinned, upstream=PROFILES["zai-coding"]).upstream.name == "zai"


def test_unknown_and_configured_models_are_not_checked() -> None:
    coding = PROFILES["zai-coding"]
    assert resolve_route(req("glm-9"), upstream=coding).model == "glm-9"
    table = RouteTable.from_mapping(
        {"models": {"my-model": {"context_window": 1, "max_output": 1}}}
    )
    assert resolve_route(req("my-model"), table, upstream=coding).model == "my-model"


def test_a_pdf_in_the_current_turn_goes_to_a_model_with_file_input() -> None:
    pdf = ir.DocumentBlock(source=ir.MediaSource(type="base64", media_type="application/pdf",
                                                 data="JVBERi0="))  # fmt: skip
    route = resolve_route(req("claude-sonnet-4-5", user(tool_result(pdf))))
    assert (route.model, route.reason) == ("glm-5.3-flash", "vision") and route.spec.files
    text_doc = ir.DocumentBlock(source=ir.MediaSource(type="text", data="notes"))
    assert resolve_route(req("claude-sonnet-4-5", user(text_doc))).model == "glm-5.3"


# --- the Coding Plan since September 2026 (issue 19) -------------------------------------------


@pytest.mark.parametrize(
    ("model", "served"),
    [("glm-5.2", "glm-5.3"), ("glm-5.1", "glm-5.3"), ("glm-5", "glm-5.3"),
     ("glm-5-turbo", "glm-5.3-flash"), ("glm-4.7", "glm-5.3-flash")],
)  # fmt: skip
@pytest.mark.parametrize("profile", ["zai-coding", "bigmodel-coding", "zai-anthropic"])
def test_a_legacy_id_on_the_plan_gets_the_serving_models_spec(
    model: str, served: str, profile: str
) -> None:
    """docs.bigmodel.cn/cn/coding-plan/overview: 5.2/5.1 -> 5.3, 5-Turbo/4.7 -> 5.3-Flash."""
    thinking_off = ir.Request(model=model, messages=[user()], thinking=ir.Thinking(type="disabled"))
    route = resolve_route(thinking_off, upstream=PROFILES[profile])
    assert route.model == model  # the id is sent as asked (the plan reroutes it)
    assert route.spec == DEFAULT_MODELS[served]
    assert route.spec.thinking == "always"
    # pay-as-you-go serves each id as itself
    assert resolve_route(thinking_off, upstream=PROFILES["zai"]).spec == DEFAULT_MODELS[model]


def test_learned_serving_models_win_over_the_table() -> None:
    coding = PROFILES["zai-coding"]
    learned = ServedAs()
    assert resolve_route(req("glm-4.5-air"), upstream=coding, learned=learned).spec.id == (
        "glm-4.5-air")  # fmt: skip
    assert learned.learn("zai-coding", "glm-4.5-air", "glm-5.3-flash")
    assert not learned.learn("zai-coding", "glm-4.5-air", "glm-5.3-flash")  # no news
    route = resolve_route(req("glm-4.5-air"), upstream=coding, learned=learned)
    assert (route.model, route.spec.id) == ("glm-4.5-air", "glm-5.3-flash")
    # per profile: pay-as-you-go is not affected
    assert resolve_route(req("glm-4.5-air"), upstream=PROFILES["zai"], learned=learned).spec.id == (
        "glm-4.5-air")  # fmt: skip
    # an answer naming the id itself overrides the table
    learned.learn("zai-coding", "glm-4.7", "glm-4.7")
    assert resolve_route(req("glm-4.7"), upstream=coding, learned=learned).spec.id == "glm-4.7"
    again = ServedAs.from_json(msgspec.json.encode(learned.to_builtins()))
    assert again.get("zai-coding", "glm-4.5-air") == "glm-5.3-flash"
    assert ServedAs.from_json(b"not json").to_builtins() == {}


def test_an_image_for_a_legacy_text_id_still_goes_to_the_vision_model() -> None:
    # glm-4.7 is served by GLM-5.3-Flash, but whether the plan checks the parts against the
    # id is unknown: the turn goes to the vision model itself.
    route = resolve_route(req("glm-4.7", user(IMAGE)), upstream=PROFILES["zai-coding"])
    assert (route.model, route.reason) == ("glm-5.3-flash", "vision")


@pytest.mark.parametrize(
    ("model", "family"),
    [("glm-5.3-prime", "glm-5.3"), ("glm-5.2-highspeed", "glm-5.2"),
     ("glm-5.3-flash-preview", "glm-5.3-flash"), ("glm-4.6v-plus", "glm-4.6v")],
)  # fmt: skip
def test_an_unknown_variant_inherits_its_familys_spec(model: str, family: str) -> None:
    spec = resolve_route(req(model), upstream=PROFILES["zai"]).spec
    assert spec == msgspec.structs.replace(
        DEFAULT_MODELS[family], id=model, display_name=model.upper()
    )
    assert model_info(model).max_output == DEFAULT_MODELS[family].max_output
    # a different family is not a variant
    assert resolve_route(req("glm-5.35")).spec.max_output == 16384


def test_the_plan_lists_the_models_it_serves() -> None:
    listed = set(offered(DEFAULT_ROUTE_TABLE, PROFILES["zai-coding"]).models)
    assert listed == {"glm-5.3", "glm-5.3-flash", "glm-5.3-highspeed"}
    assert "(tier-gated)" in (DEFAULT_MODELS["glm-5.3-highspeed"].display_name or "")
    bigmodel = set(offered(DEFAULT_ROUTE_TABLE, PROFILES["bigmodel-coding"]).models)
    assert bigmodel == listed | {"glm-4.6v"}  # BigModel's coding host still serves it
    assert resolve_route(req("glm-4.6v"), upstream=PROFILES["bigmodel-coding"]).model == "glm-4.6v"
    # pay-as-you-go lists what it serves, legacy ids included
    assert {"glm-4.7", "glm-5.1"} <= set(offered(DEFAULT_ROUTE_TABLE, PROFILES["zai"]).models)


def test_model_info_on_the_plan_reports_the_serving_model() -> None:
    assert model_info("glm-4.7", upstream=PROFILES["zai-coding"]).id == "glm-5.3-flash"
    assert model_info("glm-4.7").id == "glm-4.7"


def test_side_requests_go_to_the_side_model() -> None:
    off = ir.Thinking(type="disabled")
    side = ir.Request(model="claude-opus-4-8", messages=[user()], thinking=off)
    search = ir.Tool(name="web_search", server_type="web_search_20250305")
    searching = msgspec.structs.replace(side, tools=[search])
    tool = ir.Tool(name="Bash", input_schema={"type": "object"})
    working = msgspec.structs.replace(side, tools=[tool])  # a main loop that turned thinking off
    assert (resolve_route(side).model, resolve_route(side).reason) == (
        "glm-5.3-flash", "side:alias:*opus*")  # fmt: skip
    assert resolve_route(searching).model == "glm-5.3-flash"
    assert resolve_route(working).model == "glm-5.3"
    assert resolve_route(req("claude-opus-4-8")).model == "glm-5.3"  # thinking unsaid
    # an explicit GLM id or an override is honoured as asked
    assert resolve_route(msgspec.structs.replace(side, model="glm-5.3")).model == "glm-5.3"
    assert resolve_route(side, override="glm-5.3").model == "glm-5.3"
    # configurable, and off
    other = RouteTable.from_mapping({"side_model": "glm-4.6"})
    assert resolve_route(side, other).model == "glm-4.6"
    none = RouteTable.from_mapping({"side_model": "off"})
    assert none.side_model is None and resolve_route(side, none).model == "glm-5.3"
    with pytest.raises(ValueError, match="side_model"):
        RouteTable.from_mapping({"side_model": "gpt-4o"})
