"""A model-feature run to be killed by a test: image_embedding, counting the rows it computes.

usage: python tests/killed_run.py COUNTER_FILE BATCH_SIZE CHECKPOINT_SIZE COMMIT_EVERY [inprocess|ray]
(the table comes from the FASHION_* variables). Each model batch appends its row count to COUNTER_FILE, so
the test knows how much work the killed process did. With ``ray`` the run starts its own local Ray, as
``fashion-assets refresh`` does, and the counting happens in the Ray actor.
"""

from __future__ import annotations

import sys

from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import InProcessRunner, RayRunner
from fashion_assets.project import Project


def main(counter: str, batch_size: int, checkpoint_size: int, commit_every: int, runner: str) -> None:
    project = Project()
    feature = project.features["image_embedding"]
    feature.batch_size = batch_size
    infer = feature.infer

    def counted(prepared):
        out = infer(prepared)
        with open(counter, "a") as f:
            f.write(f"{len(out.values)}\n")
        return out

    feature.infer = counted
    run_feature(
        project.table,
        feature,
        project.spec("image_embedding"),
        runner=RayRunner() if runner == "ray" else InProcessRunner(),
        checkpoint_size=checkpoint_size,
        commit_every=commit_every,
    )


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:5]), sys.argv[5] if len(sys.argv) > 5 else "inprocess")
