import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.cluster import Cluster


@pytest.fixture
def cluster_factory(tmp_path):
    clusters: list[Cluster] = []

    def make(secondaries: int | None = None, in_memory: bool = False) -> Cluster:
        workdir = tmp_path / f"cluster{len(clusters)}"
        workdir.mkdir()
        cluster = Cluster(workdir, secondaries, in_memory=in_memory)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()
    # Whatever a test did to them, no node may ever log a traceback.
    for cluster in clusters:
        for log in sorted(cluster.tmp_path.glob("*.log")):
            text = log.read_text(errors="replace")
            assert "Traceback" not in text, f"{log.name} has a traceback:\n{text[-3000:]}"
