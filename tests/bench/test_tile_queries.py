"""Performance properties of the tile store's queries (T12): proofs read tiles by key
with one index search per key, never a scan of the log's tiles."""

from __future__ import annotations

from pathlib import Path

from service.db import create_schema, make_engine
from service.evidence.merkle import inclusion_proof, leaf_hash
from service.evidence.tiles import (
    MerkleLog,
    SqlTileStorage,
    TileKey,
    _key_params,
    _tiles_by_key,
)


def test_tiles_by_key_is_an_index_search_per_key_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    create_schema(engine)
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(70_000)]  # 3 tile levels
    with engine.begin() as conn:
        MerkleLog(SqlTileStorage(conn, log_id=3)).append(hashes=hashes)
    keys = [TileKey(0, 17), TileKey(1, 1), TileKey(2, 0)]
    with engine.connect() as conn:
        statement = _tiles_by_key(len(keys))
        compiled = statement.compile(dialect=conn.dialect)
        params = {"lid": 3, **_key_params(keys)}
        assert compiled.positiontup is not None
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled),
            tuple(params[name] for name in compiled.positiontup),
        ).all()
        details = [str(row[-1]) for row in plan]
        searches = [d for d in details if "log_id=? AND level=? AND idx=?" in d]
        assert len(searches) == len(keys), details
        assert not any(d.startswith("SCAN") for d in details), details
        got = MerkleLog(SqlTileStorage(conn, log_id=3)).inclusion_proof(
            index=12_345, size=len(hashes)
        )
    assert got == inclusion_proof(hashes, 12_345)
    engine.dispose()
