"""The simulated models and GLM's business codes: what each model takes and how an error reads.

An independent model of the upstream (it must not import ``glmbridge``); every entry names its
source.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ALWAYS_THINKS_EN",
    "ALWAYS_THINKS_ZH",
    "CODING_PLAN_MODELS",
    "CODING_SERVED_AS",
    "ERROR_CODES",
    "MODELS",
    "NOT_ON_PLAN",
    "OVERLOADED_MESSAGE",
    "TIER_GATED",
    "ModelInfo",
]


class ModelInfo(NamedTuple):
    """What the simulator needs to know about a GLM model (wire-specs A.3)."""

    max_output: int
    context: int
    vision: bool
    thinking: str  # "always" (cannot be disabled) | "auto" | "hybrid" | "none"
    efforts: tuple[str, ...] = ()  # accepted reasoning_effort values (empty: ignored)


_K = 1024
_EFFORTS_53 = ("low", "high", "max")
# Thinking labels (THINK53): "always" cannot be disabled (5.3, 5.3-flash), "auto" decides for
# itself, "hybrid" thinks whenever enabled, "none" has no thinking parameter. The simulator
# reasons unless thinking is disabled or the model has none.
MODELS: dict[str, ModelInfo] = {
    **{
        m: ModelInfo(128 * _K, 200 * _K, False, "auto")
        for m in ("glm-5.1", "glm-5", "glm-4.6")
    },
    "glm-5-turbo": ModelInfo(128 * _K, 202_752, False, "auto"),  # hermes-agent#1877
    **{
        m: ModelInfo(128 * _K, 200 * _K, False, "hybrid")
        for m in ("glm-4.7", "glm-4.7-flash", "glm-4.7-flashx")
    },
    **{
        m: ModelInfo(96 * _K, 128 * _K, False, "auto")
        for m in ("glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-airx", "glm-4.5-flash")
    },
    "glm-4-32b-0414-128k": ModelInfo(16 * _K, 128 * _K, False, "none"),
    **{
        m: ModelInfo(32 * _K, 128 * _K, True, "auto")
        for m in ("glm-4.6v", "glm-4.6v-flash", "glm-4.6v-flashx")
    },
    "glm-4.5v": ModelInfo(16 * _K, 64 * _K, True, "hybrid"),
    "glm-5v-turbo": ModelInfo(128 * _K, 128 * _K, True, "auto"),
    "autoglm-phone-multilingual": ModelInfo(4 * _K, 128 * _K, True, "none"),
    # glm-5.3 always thinks: thinking.type "disabled" is a 400/1210 (farion1231/cc-switch#6737);
    # 1,048,576 context (catalogs; https://docs.z.ai/guides/llm/glm-5.3 says "1M"). Flash:
    # 1,048,576 / 131,072, "image/video/text/file" (https://docs.z.ai/guides/vlm/glm-5.3-flash
    # via open-octo/octo-agent PR#2317); flashx 1,000,000 (Vercel). highspeed: tier-gated
    # (anomalyco/models.dev PR#5493). reasoning_effort: 5.3 / 5.3-Flash accept only low, high,
    # max; 5.2 seven levels (OAS).
    **{
        m: ModelInfo(128 * _K, 1_048_576, m.startswith("glm-5.3-flash"), "always", _EFFORTS_53)
        for m in ("glm-5.3", "glm-5.3-highspeed", "glm-5.3-flash")
    },
    "glm-5.3-flashx": ModelInfo(128 * _K, 1_000_000, True, "always", _EFFORTS_53),
    "glm-5.2": ModelInfo(
        128 * _K, 1_000_000, False, "auto",
        ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    ),
}  # fmt: skip

#: What the Coding Plan endpoint (``/api/coding/paas/v4``) accepts, Aug 2026 (Pro):
#: aaif-goose/goose#11667, plus glm-5.3-highspeed (tier-gated, models.dev PR#5493). Other
#: models answer as recorded: an unknown model is 400/1214 "modelCode: does not exist"
#: (duolahypercho/codex-router#244, goose#11667); a real model outside the plan 429/1113
#: (GLM-4.6V-FlashX: zai-org/feedback#789).
CODING_PLAN_MODELS = frozenset({
    "glm-5.3", "glm-5.3-flash", "glm-5.3-highspeed", "glm-5.2", "glm-5.1", "glm-5-turbo",
    "glm-5", "glm-4.7", "glm-4.6", "glm-4.5", "glm-4.5-air",
})  # fmt: skip

#: Which model answers a legacy id on the plan since September 2026 (the default of
#: ``app.state.served_as``): "Calls to the legacy models GLM-5.2 and GLM-5.1 are switched
#: automatically to GLM-5.3, and calls to GLM-5-Turbo and GLM-4.7 to GLM-5.3-Flash"
#: (https://docs.bigmodel.cn/cn/coding-plan/overview, quoted in earendil-works/pi#9616); the
#: answer's ``model`` names the model that served (anomalyco/models.dev PR#7331).
CODING_SERVED_AS = {
    "glm-5.2": "glm-5.3", "glm-5.1": "glm-5.3", "glm-5": "glm-5.3",
    "glm-5-turbo": "glm-5.3-flash", "glm-4.7": "glm-5.3-flash",
}  # fmt: skip

#: Tier-gated ids: a key whose plan lacks them gets "403 not available on plan"
#: (models.dev PR#5493, PR#7333; the body is not published: our wording).
TIER_GATED = frozenset({"glm-5.3-highspeed"})
NOT_ON_PLAN = "Model {model} is not available on your plan"

#: The 1210 message for ``thinking.type: "disabled"`` on an always-thinking model:
#: Anthropic endpoint, CN and intl hosts (farion1231/cc-switch#6737) ...
ALWAYS_THINKS_ZH = "该模型始终思考，不支持关闭思考；请使用 low、high 或 max。"
#: ... and the PAYG OpenAI-style endpoint (theopenco/llmgateway#3605, hermes-agent#85890).
ALWAYS_THINKS_EN = (
    "This model always engages in thinking and cannot be disabled; please use low, high, or max"
)

_SENSITIVE = (
    "System detected potentially unsafe or sensitive content in input or generation. "
    "Please avoid using prompts that may generate sensitive content."
)
_CONCURRENCY = (
    "High concurrency usage of this API, please reduce concurrency or contact customer service "
    "to increase limits."
)
_HIGH_TRAFFIC = (
    "The model is experiencing high traffic; please try again later or switch to another model."
)
# Business codes -> (HTTP status, message). Messages are our paraphrases (wire-specs A.11).
ERROR_CODES: dict[str, tuple[int, str]] = {
    "500": (500, "Internal error, please try again later."),
    "1000": (401, "Authentication failed."),
    "1001": (401, "Authorization parameter not received in the header; unable to authenticate."),
    "1002": (401, "Authorization token is invalid; make sure it is passed correctly."),
    "1003": (401, "Authorization token has expired; please generate a new one."),
    "1004": (401, "Authentication failed with the provided token."),
    "1110": (429, "Your account is inactive; please check your account information."),
    "1112": (429, "Your account has been locked; please contact customer service."),
    "1113": (429, "Insufficient balance or no resource package. Please recharge."),
    "1121": (429, "Your account has been locked for irregular activity."),
    "1210": (400, "Incorrect API call parameters; please check the documentation."),
    "1211": (400, "Unknown Model, please check the model code."),
    "1213": (400, "The {field} parameter was not received properly."),
    "1214": (400, "Invalid {field} parameter; please check the documentation."),
    "1220": (434, "You do not have permission to access this API."),
    "1222": (404, "The API does not exist."),
    "1230": (500, "API call process error."),
    "1234": (500, "Network error, please try again later."),
    "1261": (400, "Prompt exceeds max length."),
    "1301": (400, _SENSITIVE),
    "1302": (429, _CONCURRENCY),
    "1303": (429, "High frequency usage of this API, please reduce frequency."),
    "1304": (429, "The daily call limit for this API has been reached."),
    "1305": (429, "Too many requests; the rate limit was triggered. Please try again later."),
    "1308": (429, "Usage limit reached for 5 hour. Your limit will reset at 2099-01-01 00:00:00"),
    "1309": (429, "Your GLM Coding Plan package has expired."),
    "1310": (429, "Weekly/Monthly Limit Exhausted. Your limit will reset at 2099-01-01 00:00:00"),
    "1311": (403, "Your current plan does not include access to this model."),
    "1312": (429, _HIGH_TRAFFIC),
    "1313": (429, "Your usage violates the fair-use policy; your rate has been restricted."),
    # September 2026, all HTTP 429 (tetsuo-ai/agenc-core PR#2491); the exact texts are not
    # published: ours name the reset like 1308 does. 1314/1315 need another key or plan.
    "1314": (429, "Access to this plan has been restricted; please contact customer service."),
    "1315": (429, "Your plan does not allow this usage; please change plan or use another key."),
    **{
        c: (429, f"Usage limit reached ({c}). Your limit will reset at 2099-01-01 00:00:00")
        for c in ("1316", "1317", "1318", "1319", "1320", "1321")
    },
}


#: The 529/1305 text seen on /api/anthropic (repoprompt/repoprompt-ce#295).
OVERLOADED_MESSAGE = "The service may be temporarily overloaded, please try again later"
