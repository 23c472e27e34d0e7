"""Schema-driven fuzzing (schemathesis) of every operation: no input gives a 5xx.

The app is the real one over the embedded chain and SQLite, seeded with evidence, an
anchored checkpoint, the indexer's mirror and a computed round, so reads hit real rows.
Every request carries an operator's token (the role that may call everything), so the
generated inputs reach the handlers instead of stopping at 401. Bounded: at most
``MAX_EXAMPLES`` cases per operation and generation mode (valid inputs, then inputs
that break the schema), derandomized. Valid inputs' 2xx bodies must also match the
documented response schema. (Each operation runs through ``operation.as_strategy()``
under Hypothesis: schemathesis's lazy pytest fixture mode does not run on pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from sqlalchemy.engine import Engine

from service.api.context import ServiceContext
from service.evidence.anchor import anchor_once
from tests.api.conftest import TestClient, bearer, get_token, make_client
from tests.api.test_participants import index_once
from tests.settlement.test_engine import P0, P1, agreement, make_policy, usage
from tests.space import Space

MAX_EXAMPLES = 20


@pytest.fixture
def fuzz_app(space: Space, tmp_path: Any) -> Iterator[tuple[Any, dict[str, str]]]:
    from service.db import create_schema, make_engine

    engine: Engine = make_engine(f"sqlite:///{tmp_path}/fuzz.db")
    create_schema(engine)
    client, ctx = make_client(space, engine, role_cache_s=600.0, data_dir=tmp_path)
    with client:
        headers = bearer(get_token(client, space.operator))
        _seed(client, ctx, space, headers)
        yield client.app, headers
    engine.dispose()


def _seed(client: TestClient, ctx: ServiceContext, space: Space, op: dict[str, str]) -> None:
    consumer = bearer(get_token(client, space.consumers[0]))
    items = [e.to_json() for e in [agreement(space), *usage(space)]]
    assert client.post("/v1/evidence", json={"entries": items}, headers=consumer).status_code == 200
    anchor_once(
        engine=ctx.engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    index_once(ctx, space)
    policy = make_policy(space).document  # the policy the seeded agreement names
    body = {"round_id": 1, "period_start": P0, "period_end": P1, "policy": policy}
    assert client.post("/v1/rounds", json=body, headers=op).status_code == 200


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gives_a_server_error(
    fuzz_app: tuple[Any, dict[str, str]], mode: GenerationMode
) -> None:
    app, headers = fuzz_app
    operations = _operations(app)
    assert len(operations) >= 28
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        try:
            run()
        except Unsatisfiable:  # nothing to break: the operation takes no input
            assert mode is GenerationMode.NEGATIVE
        except Exception as err:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {err}")
    assert not failures, "\n\n".join(failures)
