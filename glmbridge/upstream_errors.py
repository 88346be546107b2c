"""What an upstream failure means: Z.ai business codes and HTTP statuses -> UpstreamError.

This is the one place that knows GLM's business error codes (docs.z.ai/api-reference/
api-code, and the codes seen in the field: ``../shared/reference/user-demand.md`` §0).
Every upstream codec parses its own error *shape* (GLM's ``{"error": {"code", "message"}}``,
the Anthropic endpoint's ``{"type": "error", "error": {"type", "code", "message"}}``) and
hands the parts to :func:`error_from_parts`; the server's key pool reads the code sets
below to decide between retry, cool-down and failover.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from glmbridge.errors import ErrorKind, UpstreamError
from glmbridge.quota import names_reset

__all__ = [
    "AUTH_CODES",
    "BUSINESS_CODES",
    "CODES",
    "FINISH_ERRORS",
    "HTTP_STATUSES",
    "PLAN_CODES",
    "QUOTA_CODES",
    "THROTTLE_CODES",
    "ZaiCode",
    "error_from_parts",
    "is_key_failure",
    "plan_error",
    "scrub",
]


class ZaiCode(NamedTuple):
    """What one Z.ai business code means.

    Attributes:
        kind: the protocol-neutral error class the client sees.
        status: the HTTP status the client gets (each door renders it natively).
        retryable: a retry (with backoff, before the first byte) may succeed.
        scope: who is at fault: ``"request"`` (this request), ``"key"`` (the key is
            unusable now: the key pool cools it and fails over), ``"quota"`` (the key's
            quota window is spent: cooled until it resets), or ``"plan"`` (the model is
            outside the key's plan: a client error that never cools a key).
        hint: appended to the upstream's message, saying what it means for the user.
    """

    kind: ErrorKind
    status: int
    retryable: bool
    scope: str
    hint: str = ""


_QUOTA_HINT = "GLM quota or balance exhausted; retrying will not help until it resets"
_ACCOUNT_HINT = "the Z.ai account of this key is not usable"
_K, _R = ErrorKind, "request"

#: Every Z.ai business code: docs.z.ai/api-reference/api-code (zai-fidelity ERR) and the codes
#: seen in the field (user-demand §0; zai-fidelity 4.1-4.12).
CODES: dict[str, ZaiCode] = {
    # 1000-1004 authentication: HTTP 401 (ERR example 401/1002).
    **{c: ZaiCode(_K.AUTHENTICATION, 401, False, "key") for c in ("1000", "1001", "1002", "1003",
                                                                     "1004")},
    # 1110-1121 account: inactive, missing, locked, in arrears, access denied, locked for
    # irregular activity (ERR). 1113 "余额不足或无可用资源包" (no balance or resource package),
    # HTTP 429 (zhayujie/CowAgent#2910); also a Coding-Plan key on the general URL.
    **{c: ZaiCode(_K.PERMISSION, 403, False, "key", _ACCOUNT_HINT)
       for c in ("1110", "1111", "1112", "1120", "1121")},
    "1113": ZaiCode(_K.RATE_LIMIT, 429, False, "quota", _QUOTA_HINT),
    # 1210-1215 parameters: HTTP 400 (ERR); 1211 unknown model.
    **{c: ZaiCode(_K.INVALID_REQUEST, 400, False, _R) for c in ("1210", "1212", "1213", "1214",
                                                                 "1215")},
    "1211": ZaiCode(_K.NOT_FOUND, 404, False, _R, "model not found"),
    "1220": ZaiCode(_K.PERMISSION, 403, False, "key", "this key may not use this API"),
    # 1221 API offline, 1231 duplicate request id (https://docs.z.ai/api-reference/api-code).
    "1221": ZaiCode(_K.NOT_FOUND, 404, False, _R, "this API is offline"),
    "1222": ZaiCode(_K.NOT_FOUND, 404, False, _R, "the API does not exist"),
    "1231": ZaiCode(_K.INVALID_REQUEST, 400, False, _R, "duplicate request id"),
    # "网络错误，请稍后重试" as a 400 or inside a 200 stream (llm-simple-router db72374).
    "1230": ZaiCode(_K.API_ERROR, 500, True, _R, "upstream error"),
    "1234": ZaiCode(_K.API_ERROR, 500, True, _R, "upstream network error"),
    "1261": ZaiCode(_K.INVALID_REQUEST, 400, False, _R, "prompt is too long"),  # 4.5
    "1301": ZaiCode(_K.INVALID_REQUEST, 400, False, _R, "content policy"),  # 4.6
    # 1302/1303 concurrency and frequency: 429, "works on retry" (anomalyco/opencode#14535);
    # 1302 has also been answered for a model the plan excludes (kaitranntt/ccs#536).
    "1302": ZaiCode(_K.RATE_LIMIT, 429, True, _R,
                    "if it persists, the plan may not include this model"),
    "1303": ZaiCode(_K.RATE_LIMIT, 429, True, _R),
    "1304": ZaiCode(_K.RATE_LIMIT, 429, False, _R, "daily call limit reached"),
    # 1305 overload: a 429, or HTTP 200 with the code in the body (llm-simple-router PR#95).
    "1305": ZaiCode(_K.OVERLOADED, 529, True, _R, "GLM is overloaded"),
    # Coding Plan quota windows: 1308 five hours, 1309 plan expired, 1310 weekly/monthly (4.8).
    **{c: ZaiCode(_K.RATE_LIMIT, 429, False, "quota", _QUOTA_HINT)
       for c in ("1308", "1309", "1310")},
    # "plan does not include GLM-5V-Turbo" (NousResearch/hermes-agent#51476).
    "1311": ZaiCode(_K.PERMISSION, 403, False, "plan", "model not included in the plan"),
    "1312": ZaiCode(_K.RATE_LIMIT, 429, True, _R, "high traffic"),  # status unknown (4.9)
    "1313": ZaiCode(_K.RATE_LIMIT, 429, False, _R, "fair-use restriction"),  # 4.10
    # September 2026, all on HTTP 429: "The usage limits (1308, 1310, 1316-1321) name a
    # reset … The rest (1309, 1311, 1313-1315) need a renewal, a plan change, another key or
    # … a request to restore access" (tetsuo-ai/agenc-core PR#2491; the docs separate quota
    # exhaustion into 1308/1309/1310/1316/1317: electricsheephq/evaos-code-review-bot-neondiff
    # #66). 1314/1315: this key is done (another key may not be); never retried.
    **{c: ZaiCode(_K.RATE_LIMIT, 429, False, "key", _ACCOUNT_HINT) for c in ("1314", "1315")},
    **{c: ZaiCode(_K.RATE_LIMIT, 429, False, "quota", _QUOTA_HINT)
       for c in ("1316", "1317", "1318", "1319", "1320", "1321")},
}  # fmt: skip

#: Stream finish reasons that are failures (mid-stream failures come only as finish
#: reasons: ERR; seen: promptfoo PR#9905, earendil-works/pi#1750, #2313) -> message.
#: Both are retryable before the first byte. ``sensitive`` is an answer (a refusal).
FINISH_ERRORS: dict[str, str] = {
    "network_error": "upstream aborted the generation (finish_reason network_error)",
    "abort": "upstream aborted the generation (finish_reason abort)",
}

#: Concurrency and load codes: worth a retry with backoff.
THROTTLE_CODES = frozenset(c for c, z in CODES.items() if z.retryable and z.status in (429, 529))
#: Quota and balance codes: this key is spent until its window resets.
QUOTA_CODES = frozenset(c for c, z in CODES.items() if z.scope == "quota")
#: Credential and account codes: this key is unusable.
AUTH_CODES = frozenset(c for c, z in CODES.items() if z.scope == "key")
#: The model is outside the key's plan.
PLAN_CODES = frozenset(c for c, z in CODES.items() if z.scope == "plan")
# business code -> (kind, status_hint, retryable, hint appended to the message)
BUSINESS_CODES: dict[str, tuple[ErrorKind, int, bool, str]] = {
    c: (z.kind, z.status, z.retryable, z.hint) for c, z in CODES.items()
}
# HTTP status -> (kind, retryable), used when the business code is unknown.
HTTP_STATUSES: dict[int, tuple[ErrorKind, bool]] = {
    400: (ErrorKind.INVALID_REQUEST, False),
    401: (ErrorKind.AUTHENTICATION, False),
    403: (ErrorKind.PERMISSION, False),
    404: (ErrorKind.NOT_FOUND, False),
    408: (ErrorKind.TIMEOUT, True),
    413: (ErrorKind.REQUEST_TOO_LARGE, False),
    429: (ErrorKind.RATE_LIMIT, True),
    434: (ErrorKind.PERMISSION, False),
    435: (ErrorKind.REQUEST_TOO_LARGE, False),
    500: (ErrorKind.API_ERROR, True),
    # A gateway in front of GLM that is down, busy or timing out: the client's native
    # "overloaded, try again" is what it means and what clients back off on.
    502: (ErrorKind.OVERLOADED, True),
    503: (ErrorKind.OVERLOADED, True),
    504: (ErrorKind.OVERLOADED, True),
    529: (ErrorKind.OVERLOADED, True),
}
_MAX_MESSAGE = 500
# The Anthropic endpoint repeats the code inside the message: "[1113][余额不足][req id]".
_CODE_PREFIX = re.compile(r"^\s*\[(\d{3,5})\]\s*")
_TEXT_AND_RID = re.compile(r"^\[(?P<text>.*)\]\[(?P<rid>[^\[\]]*)\]$", re.DOTALL)


def _classify_status(status: int) -> tuple[ErrorKind, bool]:
    known = HTTP_STATUSES.get(status)
    if known is not None:
        return known
    if 500 <= status < 600:
        return ErrorKind.API_ERROR, True
    if 400 <= status < 500:
        return ErrorKind.INVALID_REQUEST, False
    return ErrorKind.API_ERROR, False  # e.g. an in-band error inside a 200


def error_from_parts(
    status: int, code: Any, message: Any, *, retry_after: float | None = None
) -> UpstreamError:
    """Build the :class:`UpstreamError` for a parsed upstream error (code + message).

    A known business code decides the kind (``BUSINESS_CODES``), else the HTTP status
    (``HTTP_STATUSES``). A code missing from ``code`` but leading the message
    (``"[1302] ..."``) counts too. The message is kept, prefixed once with the code.
    """
    code_str = str(code) if code not in (None, "") and not isinstance(code, bool) else None
    text = message if isinstance(message, str) and message else f"upstream HTTP {status}"
    found = _CODE_PREFIX.match(text)
    if found is not None:
        code_str = code_str or found.group(1)
        if found.group(1) == code_str:
            text = text[found.end() :] or f"upstream HTTP {status}"
            wrapped = _TEXT_AND_RID.match(text)
            if wrapped is not None:  # "[1113][余额不足][<request id>]": unwrap, keep the id
                rid = wrapped["rid"]
                text = wrapped["text"] + (f" (request {rid})" if rid else "")
    entry = BUSINESS_CODES.get(code_str or "")
    status_hint: int | None
    # Any 429 that names a reset time is a spent usage limit, whatever its number: the key
    # rests until then and nothing is retried (tetsuo-ai/agenc-core PR#2491: the usage
    # limits are the codes that "name a reset").
    quota = status == 429 and (
        (entry is None or entry[0] is ErrorKind.RATE_LIMIT) and names_reset(text)
    )
    if entry is not None:
        kind, status_hint, retryable, hint = entry
        if hint:
            text = f"{text} ({hint})"
    else:
        kind, retryable = _classify_status(status)
        status_hint = None
    if quota:
        kind, retryable, status_hint = ErrorKind.RATE_LIMIT, False, 429
    if code_str:
        text = f"[{code_str}] {text}"
    err = UpstreamError(
        text[:_MAX_MESSAGE],
        kind=kind,
        status=status,
        code=code_str,
        retry_after=retry_after,
        retryable=retryable,
        status_hint=status_hint,
    )
    err.quota = quota or (code_str or "") in QUOTA_CODES
    return err


def scrub(err: UpstreamError, secrets: tuple[str, ...]) -> UpstreamError:
    """``err`` with every secret in its message replaced by ``[redacted]``.

    Upstreams (and gateways before them) echo what they got, the API key included
    ("bad key Bearer <key>"), in HTTP error bodies, in a JSON error sent with ``200``, and
    in ``error`` chunks inside a stream. Every upstream-derived message passes here
    before it reaches a client or a log line.
    """
    message = err.message
    for secret in secrets:
        if secret and secret in message:
            message = message.replace(secret, "[redacted]")
    if message is not err.message:
        err.message = message
        err.args = (message,)
    return err


def is_key_failure(err: UpstreamError) -> bool:
    """Whether ``err`` says the key itself is unusable now (credentials, quota, balance).

    A plan error (:func:`plan_error`: the *model* is outside the plan) never is: every key
    of the same plan would answer the same, so cooling them all would only lock the user
    out of the models the plan does include.
    """
    if err.plan or err.spares_key:
        return False
    return (
        err.status in (401, 403) or err.code in AUTH_CODES or err.code in QUOTA_CODES or err.quota
    )


_NO_MODEL = ("modelcode", "does not exist", "模型不存在")
# A tier-gated model below its tier: "403 not available on plan" (glm-5.3-highspeed on a
# Lite/Pro key: anomalyco/models.dev PR#5493, PR#7333).
_NOT_ON_PLAN = re.compile(r"not\s+available\s+(?:on|in|for)\s+(?:your\s+|this\s+|the\s+)?"
                          r"(?:current\s+)?plan", re.IGNORECASE)  # fmt: skip


def _means_not_in_plan(err: UpstreamError, in_plan: bool | None) -> bool:
    code = err.code or ""
    if code in PLAN_CODES:
        return True
    if err.status == 403 and _NOT_ON_PLAN.search(err.message):
        return True
    if in_plan is None:
        return False
    if code == "1214":
        return any(s in err.message.lower() for s in _NO_MODEL)
    if code == "1113" or (err.status == 404 and not code):
        return not in_plan
    return False


def plan_error(err: UpstreamError, *, model: str, plan: str, in_plan: bool | None) -> UpstreamError:
    """``err`` reclassified as "model not in your plan" when that is what it means.

    Z.ai says so in several ways (zai-fidelity 1.3, 4.3, 4.4, 4.9): 1311 "plan does not
    include model"; a 403 "not available on plan" (a tier-gated model, whatever the
    endpoint); on the Coding Plan endpoint 1214 "modelCode: does not exist" for a
    model it does not serve, a 404 for glm-4.6v, and 1113 ("no resource package") for a
    model outside the plan. 1113 on a model the plan does include stays a quota error
    (the key has no usable plan), as does every answer where ``in_plan`` is ``None``
    (not a plan endpoint).

    The result is a 403 ``permission`` error (404 ``not_found`` for the "does not exist"
    answers) naming the model and the plan, not "quota exhausted", not retryable, and
    :func:`is_key_failure` is false for it.

    Args:
        err: the upstream error as classified by :func:`error_from_parts`.
        model: the model the request was sent for.
        plan: what the upstream is (``"GLM Coding Plan"``).
        in_plan: whether the plan is known to include ``model`` (``None``: no plan).
    """
    if not _means_not_in_plan(err, in_plan):
        return err
    said = err.message
    row = CODES.get(err.code or "")
    if row is not None and row.hint:  # the code's usual meaning ("quota …") is not it here
        said = said.replace(f" ({row.hint})", "")
    message = (
        f"model {model!r} is not available on the {plan} ({said}); use a model the "
        "plan includes, or map this model name to one in the [models] configuration"
    )
    # "does not exist" answers (1214, a bare 404) stay a 404: the model may not exist at all.
    missing = err.code == "1214" or (not err.code and err.status != 403)
    out = UpstreamError(
        message[:_MAX_MESSAGE],
        kind=ErrorKind.NOT_FOUND if missing else ErrorKind.PERMISSION,
        status=err.status,
        code=err.code,
        retryable=False,
        status_hint=404 if missing else 403,
    )
    out.plan = out.spares_key = True
    return out
