"""The OpenAPI document: the hand-decoded bodies and, with a key, the security."""

from __future__ import annotations

import httpx

from service.contract import PATHS
from tests.service.api.payloads import INFER, KEY
from tests.service.conftest import AppFactory


def test_openapi_describes_the_real_bodies(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    content = infer["requestBody"]["content"]
    assert content["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferRequestBody"
    }
    assert "application/octet-stream" in content
    assert "InferInputTensor" in spec["components"]["schemas"]
    predict = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert predict["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    assert "400" in spec["paths"]["/predict"]["post"]["responses"]
    assert client.get(PATHS.DOCS).status_code == 200
    # The documented examples are real requests ("Try it out" in /docs works).
    schemas = spec["components"]["schemas"]
    for path, model in ((PATHS.PREDICT, "PredictRequest"), (INFER, "InferRequestBody")):
        (example,) = schemas[model]["examples"]
        assert client.post(path, json=example).status_code == 200, path


def test_only_the_secured_routes_ask_for_the_key_and_only_when_one_is_set(
    make_client: AppFactory,
) -> None:
    secured = {
        (PATHS.PREDICT, "post"),
        (PATHS.MODEL_INFER, "post"),
        (PATHS.MODEL_METADATA + "/versions/{version}/infer", "post"),
        (PATHS.MODEL_METADATA, "get"),
        (PATHS.MODEL_METADATA + "/versions/{version}", "get"),
    }
    with_key = make_client(api_key=KEY).get("/openapi.json").json()
    asking = {
        (path, method)
        for path, operations in with_key["paths"].items()
        for method, operation in operations.items()
        if "security" in operation
    }
    assert asking == secured
    for path, method in secured:
        assert with_key["paths"][path][method]["security"] == [
            {"ApiKeyHeader": []},
            {"BearerToken": []},
        ]
    # A second app in the same process, without a key, documents no security at all.
    without_key = make_client().get("/openapi.json").json()
    assert "securitySchemes" not in without_key["components"]
    assert not any(
        "security" in operation
        for operations in without_key["paths"].values()
        for operation in operations.values()
    )
