from support.waiting import wait_until


def test_write_replicates_to_secondaries(cluster_factory):
    cluster = cluster_factory(secondaries=2)
    cluster.start_master()
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    resp = cluster.write("hello", w=3, id=1)
    assert resp.status == 201, resp
    assert resp.body["acked_by"] == ["master", "s1", "s2"]
    for node in cluster.secondaries.values():
        wait_until(lambda node=node: node.messages() == [{"seq": 1, "id": 1, "message": "hello"}])
