"""The one table of Z.ai codes (glmbridge.upstream_errors), plan errors (issue 11)."""

from __future__ import annotations

import pytest

from glmbridge.errors import ErrorKind, UpstreamError
from glmbridge.exchange import Exchange
from glmbridge.profiles import PROFILES, profile_for
from glmbridge.protocols.anthropic.door import DOOR as ANTHROPIC_DOOR
from glmbridge.upstream_errors import (
    AUTH_CODES,
    CODES,
    FINISH_ERRORS,
    PLAN_CODES,
    QUOTA_CODES,
    THROTTLE_CODES,
    error_from_parts,
    is_key_failure,
    plan_error,
)

# Every code the issue lists: 1000-1004, 1110-1121 (1113), 1210-1214, 1261, 1301, 1302, 1305,
# 1308, 1310, 1311, 1312, 1313.
LISTED = [
    "1000", "1001", "1002", "1003", "1004", "1110", "1111", "1112", "1113", "1120", "1121",
    "1210", "1211", "1212", "1213", "1214", "1261", "1301", "1302", "1305", "1308", "1310",
    "1311", "1312", "1313",
    # September 2026 (tetsuo-ai/agenc-core PR#2491; docs.z.ai/api-reference/api-code)
    "1221", "1231", "1314", "1315", "1316", "1317", "1318", "1319", "1320", "1321",
]  # fmt: skip


@pytest.mark.parametrize("code", LISTED)
def test_every_listed_code_has_one_row(code: str) -> None:
    row = CODES[code]
    assert 400 <= row.status < 600 and row.scope in ("request", "key", "quota", "plan")
    err = error_from_parts(429, code, "upstream text")
    assert (err.kind, err.status_hint, err.retryable, err.code) == (
        row.kind, row.status, row.retryable, code)  # fmt: skip
    assert err.message.startswith(f"[{code}] upstream text")


def test_the_code_sets_follow_the_table() -> None:
    assert {"1000", "1002", "1110", "1121", "1314", "1315"} <= AUTH_CODES
    assert {"1113", "1308", "1309", "1310", "1316", "1317", "1318", "1319", "1320", "1321"} == (
        QUOTA_CODES)  # fmt: skip
    assert {"1302", "1303", "1305", "1312"} == THROTTLE_CODES
    assert {"1311"} == PLAN_CODES


def test_1305_with_http_200_is_a_retryable_overload() -> None:
    # overload sent as HTTP 200 with the code in the body (llm-simple-router PR#95)
    err = error_from_parts(200, "1305", "服务过载")
    assert err.kind is ErrorKind.OVERLOADED and err.retryable and err.status == 200


@pytest.mark.parametrize("reason", ["network_error", "abort"])
def test_failure_finish_reasons(reason: str) -> None:
    assert reason in FINISH_ERRORS[reason]


def _plan(err: UpstreamError, in_plan: bool | None) -> UpstreamError:
    return plan_error(err, model="glm-4.6v", plan="GLM Coding Plan", in_plan=in_plan)


@pytest.mark.parametrize(
    ("status", "code", "message", "in_plan"),
    [
        (403, "1311", "plan does not include GLM-5V-Turbo", None),  # hermes-agent#51476
        (400, "1214", "modelCode: does not exist", False),  # codex-router#244
        (429, "1113", "余额不足或无可用资源包,请充值。", False),  # zai-org/feedback#789
        (404, None, "Not Found", False),  # glm-4.6v on the Coding Plan (dejay2/glmproxy#9)
    ],
)
def test_model_not_in_plan_is_a_clear_4xx_that_cools_no_key(
    status: int, code: str | None, message: str, in_plan: bool | None
) -> None:
    err = _plan(error_from_parts(status, code, message), in_plan)
    missing = code in ("1214", None)  # "does not exist": not found; else no permission
    assert err.plan and not err.retryable
    assert (err.kind, err.status_hint) == (
        (ErrorKind.NOT_FOUND, 404) if missing else (ErrorKind.PERMISSION, 403))  # fmt: skip
    assert "glm-4.6v" in err.message and "GLM Coding Plan" in err.message
    assert "quota" not in err.message
    assert not is_key_failure(err)


def test_quota_and_request_errors_stay_what_they_are() -> None:
    spent = _plan(error_from_parts(429, "1113", "余额不足"), True)  # a plan model: the key
    assert not spent.plan and is_key_failure(spent) and "quota" in spent.message
    payg = _plan(error_from_parts(429, "1113", "余额不足"), None)  # not a plan endpoint
    assert not payg.plan and is_key_failure(payg)
    bad = _plan(error_from_parts(400, "1214", "Invalid max_tokens parameter"), False)
    assert not bad.plan and bad.kind is ErrorKind.INVALID_REQUEST
    assert is_key_failure(error_from_parts(429, "1308", "Usage limit reached for 5 hour"))


def test_the_exchange_reports_plan_errors_in_every_shape() -> None:
    body = b'{"model":"glm-9","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}'
    ex = Exchange.prepare(ANTHROPIC_DOOR, body, upstream=PROFILES["zai-coding"])
    err = ex.decode_error(400, b'{"error":{"code":"1214","message":"modelCode: does not exist"}}')
    assert err.plan and "glm-9" in err.message and "GLM Coding Plan" in err.message
    status, _, out = ex.error_response(err)
    assert status == 404 and b"not_found_error" in out
    with pytest.raises(UpstreamError) as info:  # the same answer sent with HTTP 200
        ex.complete(b'{"error":{"code":"1311","message":"plan does not include glm-9"}}')
    assert info.value.plan
    # a custom URL on a Coding Plan path is the plan too (a proxy, the simulator, --mock)
    custom = profile_for("http://127.0.0.1:9/api/coding/paas/v4")
    assert custom.plan and custom.serves("glm-5.3") and not custom.serves("glm-4.6v")
    assert not profile_for("http://127.0.0.1:9/api/paas/v4").plan


# --- September 2026 (issue 19) -----------------------------------------------------------------


@pytest.mark.parametrize("code", ["1316", "1317", "1318", "1319", "1320", "1321"])
def test_the_new_usage_limits_rest_the_key_and_are_not_retried(code: str) -> None:
    err = error_from_parts(
        429, code, "Usage limit reached. Your limit will reset at 2026-08-27 21:31:39"
    )
    assert err.kind is ErrorKind.RATE_LIMIT and not err.retryable and err.quota
    assert is_key_failure(err)


@pytest.mark.parametrize("code", ["1314", "1315"])
def test_1314_and_1315_need_another_key(code: str) -> None:
    err = error_from_parts(429, code, "access restricted")
    assert not err.retryable and is_key_failure(err) and not err.quota


@pytest.mark.parametrize("code", ["1302", "1399", None])
def test_any_429_naming_a_reset_is_a_spent_usage_limit(code: str | None) -> None:
    err = error_from_parts(429, code, "Limit reached; it will reset at 2026-08-27 21:31:39")
    assert err.quota and not err.retryable and is_key_failure(err) and err.status_hint == 429
    plain = error_from_parts(429, code, "Rate limit reached for requests")
    assert not plain.quota


def test_a_tier_gated_403_is_a_plan_error_that_cools_no_key() -> None:
    # glm-5.3-highspeed below its tier: "403 not available on plan" (models.dev PR#5493)
    err = error_from_parts(403, None, "Model glm-5.3-highspeed is not available on your plan")
    assert is_key_failure(err)  # a bare 403 would cool the key ...
    out = plan_error(err, model="glm-5.3-highspeed", plan="GLM Coding Plan", in_plan=True)
    assert out.plan and out.spares_key and not is_key_failure(out)  # ... this one never does
    assert out.status_hint == 403 and "glm-5.3-highspeed" in out.message
    assert "not available on the GLM Coding Plan" in out.message
