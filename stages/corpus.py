"""DVC stage `corpus`: index every corpus identity's tables for pretraining (paper Sec. 3.3).

Checks that each identity's tables describe the same frames and that all identities agree on
audio feature size, FLAME variant and identity-vector size; writes `data/processed/_corpus/`:
`index.parquet` (per frame: identity, clip, row of each table, usable flag) and `manifest.json`
(per identity: table paths and digests, metadata). No frame data is copied.
"""
from __future__ import annotations

import json
import sys

import pyarrow as pa

from emotag_core.io.atomic import atomic_dir
from emotag_core.train.data import build_identity_index, check_compatible, file_digest
from emotag_core.train.recipe import identity_tables
from stages.common import CORPUS_DIR, Paths, params, stage, sweep

INDEX_FILE, MANIFEST_FILE = "index.parquet", "manifest.json"


def table_paths(identity: str) -> dict[str, str]:
    return identity_tables(Paths(identity).processed)


@stage("corpus")
def main() -> None:
    p = params()
    sweep(CORPUS_DIR.parent)
    from emotag_core.errors import ConfigError

    if not p.corpus:
        raise ConfigError("params: `corpus` is empty; list the pretraining identities (role: corpus)")
    indices = [build_identity_index(ident, table_paths(ident)) for ident in p.corpus]
    check_compatible(indices)
    tables = []
    manifest = {"identities": {}}
    for ix in indices:
        t = ix.index
        tables.append(t.add_column(0, "identity", pa.array([ix.identity] * t.num_rows)))
        manifest["identities"][ix.identity] = {
            "tables": ix.tables, "digests": {k: file_digest(v) for k, v in ix.tables.items()},
            "frames": t.num_rows, "usable": int(sum(t.column("usable").to_pylist())), "meta": ix.meta}
    import pyarrow.parquet as pq

    with atomic_dir(CORPUS_DIR) as tmp:
        pq.write_table(pa.concat_tables(tables), tmp / INDEX_FILE, compression="zstd")
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    for ident, m in manifest["identities"].items():
        print(f"corpus: {ident}: {m['usable']}/{m['frames']} usable frames")


if __name__ == "__main__":
    sys.exit(main())
