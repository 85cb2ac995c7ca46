"""DVC stage `identity@<id>`: identity vector s from the top-k most neutral frames (paper Sec. 3.2.1).

The job is `emotag_core.teachers.identity.identity_run` (ranking by the emotion table's p(neutral)).
"""
from __future__ import annotations

from emotag_core.teachers.identity import identity_run
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("identity")
def main(identity_id: str) -> None:
    p = params()
    paths = Paths(identity_id)
    sweep(paths.processed)
    for name, producer in (("frames", "ingest"), ("emotion", "emotion")):
        need(paths.table(name), f"the {name} table", producer, identity_id)
    with progress_bar(f"identity@{identity_id}") as bar:
        identity_run(paths.table("frames"), paths.table("emotion"), paths.table("identity"), p.identity,
                     box_scale=p.ingest.box_scale, progress=bar)


if __name__ == "__main__":
    main_for(main)
