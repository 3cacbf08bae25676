"""RedisStore against a real 3-node Redis Cluster (redis-server processes this module starts).

The cluster is the check. A script may only touch keys of the slot of its KEYS: one that touches a key
of a slot its node does not serve fails with "non local key", and redis-py refuses KEYS that span two
slots. (Redis lets a script without a shebang touch other slots of its own node, so the slots are
dealt to make that impossible for two of the accounts: node 0 serves only the slot of ``KFS[0]``,
node 1 only that of ``KFS[1]``, node 2 every other slot, ``KFS[2]``'s and the global keys included.)
Every script of the store runs below for those accounts.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from channel.wechatcom_kf.store import ResilientStore, StoreUnavailable
from channel.wechatcom_kf.store.redis_store import RedisStore
from tests.channel.wechatcom_kf.store.store_helpers import (
    LONG,
    Call,
    PortTaken,
    RedisServer,
    free_port,
    ids,
    wait_until,
)

KFS = ["wkAAAA", "wkBBBB", "wkCCCC"]
SLOTS = [key_slot(kfid.encode()) for kfid in KFS]
assert len(set(SLOTS)) == 3


def node_of(slot: int) -> int:
    """The node that serves ``slot``."""
    return SLOTS.index(slot) if slot in SLOTS[:2] else 2


def slot_ranges_of_node_2() -> list[tuple[int, int]]:
    ranges, first = [], 0
    for taken in sorted(SLOTS[:2]):
        if first < taken:
            ranges.append((first, taken - 1))
        first = taken + 1
    if first <= 16383:
        ranges.append((first, 16383))
    return ranges


class Cluster:
    """Three cluster-enabled redis-servers: node 0 serves slot ``SLOTS[0]``, node 1 ``SLOTS[1]``, node 2
    the rest. ``stop_node``/``start_node`` terminate (by PID) and restart one with its saved config."""

    def __init__(self, workdir: Path, node_timeout_ms: int) -> None:
        self.workdir = workdir
        self.node_timeout_ms = node_timeout_ms
        chosen: list[int] = []
        while len(chosen) < 6:  # six distinct ports: free_port may hand out one twice
            if (port := free_port()) not in chosen:
                chosen.append(port)
        self.ports, self.bus_ports = chosen[:3], chosen[3:]
        self.servers: list[RedisServer | None] = [None, None, None]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, index: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.ports[index], socket_connect_timeout=1, decode_responses=True
        )

    def start_node(self, index: int) -> None:
        port, bus_port = self.ports[index], self.bus_ports[index]
        cluster_args = ("--cluster-enabled", "yes", "--cluster-port", str(bus_port))
        cluster_args += ("--cluster-config-file", str(self.workdir / f"nodes-{port}.conf"))
        cluster_args += ("--cluster-node-timeout", str(self.node_timeout_ms))
        self.servers[index] = RedisServer(self.workdir, cluster_args, port=port).start()

    def start_new_node(self, index: int) -> None:
        """The first start: if a port was taken since ``free_port`` chose it, choose both again (a
        restart keeps its ports, which the other nodes know)."""
        for _attempt in range(5):
            try:
                return self.start_node(index)
            except PortTaken:
                self.ports[index], self.bus_ports[index] = free_port(), free_port()
        pytest.fail(f"cluster node {index} found no free loopback ports in 5 tries")

    def stop_node(self, index: int) -> None:
        server, self.servers[index] = self.servers[index], None
        if server is not None:
            server.stop()

    def create(self) -> Cluster:
        try:
            return self._create()
        except BaseException:
            self.terminate()  # a cluster that never formed must not outlive the test
            raise

    def _create(self) -> Cluster:
        for index in range(3):
            self.start_new_node(index)
        nodes = [self.node(i) for i in range(3)]
        nodes[0].execute_command("CLUSTER", "ADDSLOTS", SLOTS[0])
        nodes[1].execute_command("CLUSTER", "ADDSLOTS", SLOTS[1])
        for first, last in slot_ranges_of_node_2():
            nodes[2].execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for port, bus_port in zip(self.ports[1:], self.bus_ports[1:], strict=True):
            nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus_port)
        for node in nodes:
            node.close()
        self.wait_state("ok", range(3))
        return self

    def state(self, index: int) -> tuple[str, dict[int, int]]:
        """(cluster_state, {first slot of a range: port of its node}) as node ``index`` sees them."""
        node = self.node(index)
        try:
            info = node.execute_command("CLUSTER", "INFO")
            if isinstance(info, dict):  # parsed by redis-py, or not, depending on its version
                info = "\n".join(f"{k}:{v}" for k, v in info.items())
            if "cluster_known_nodes:3" not in info:
                return "forming", {}
            owners = {int(row[0]): int(row[2][1]) for row in node.execute_command("CLUSTER", "SLOTS")}
            return info.split("cluster_state:", 1)[1].split()[0], owners
        finally:
            node.close()

    def wait_state(self, wanted: str, indexes: range | list[int]) -> None:
        def reached() -> bool:
            for index in indexes:
                state, owners = self.state(index)
                if (
                    state != wanted
                    or owners.get(SLOTS[0]) != self.ports[0]
                    or owners.get(SLOTS[1]) != self.ports[1]
                ):
                    return False
            return True

        wait_until(reached, 60, f"cluster_state:{wanted} on nodes {list(indexes)}")

    def terminate(self) -> None:
        for index in range(3):  # by PID, each one this object started
            self.stop_node(index)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("redis-cluster"), node_timeout_ms=5000)
    try:
        yield c.create()
    finally:
        c.terminate()


@pytest.fixture
def store(cluster: Cluster) -> Iterator[RedisStore]:
    s = RedisStore(cluster.url, prefix=f"c{uuid.uuid4().hex[:8]}:", cluster=True)
    yield s
    s.close()


def item(msgid: str, kfid: str) -> dict[str, object]:
    return {"msgid": msgid, "open_kfid": kfid, "msgtype": "text", "text": {"content": "你好"}}


# --- the setup really is a cluster that rejects cross-slot scripts -----------------------------------


def test_a_script_touching_a_key_of_another_slot_fails(cluster: Cluster) -> None:
    key_a = f"sanity:{{{KFS[0]}}}:x"  # on node 0, which serves this one slot only
    undeclared = [f"sanity:{{{KFS[1]}}}:x", f"sanity:{{{KFS[2]}}}:x", "sanity:accounts", "sanity:{x}:y"]
    assert all(key_slot(k.encode()) != SLOTS[0] for k in undeclared)
    client = RedisCluster.from_url(cluster.url)
    try:
        touch = "redis.call('SET', KEYS[1], '1'); return redis.call('GET', ARGV[1])"
        assert client.eval(touch, 1, key_a, key_a) == b"1"  # declared, one slot: fine
        for key in undeclared:
            with pytest.raises(ResponseError, match="non local key"):
                client.eval(touch, 1, key_a, key)
        with pytest.raises(RedisClusterException):  # declared keys of two slots: refused by redis-py
            client.eval("return 1", 2, key_a, undeclared[0])
    finally:
        client.close()
    node = cluster.node(2)
    with pytest.raises(ResponseError, match="same slot"):  # CROSSSLOT, from the server itself
        node.eval("return 1", 2, undeclared[2], undeclared[3])
    node.close()


def test_accounts_keys_live_on_three_nodes(cluster: Cluster, store: RedisStore) -> None:
    for kfid in KFS:
        store.accept_page(kfid, f"cursor-{kfid}", [item("m1", kfid)])
    prefix = store._prefix
    for index, kfid in enumerate(KFS):
        node = cluster.node(index)
        assert node.get(f"{prefix}{{{kfid}}}:cursor") == f"cursor-{kfid}"  # served by that node
        node.close()


# --- the store's behaviours ----------------------------------------------------------------------------


def test_inbox(store: RedisStore) -> None:
    for kfid in KFS:
        accepted = store.accept_page(
            kfid, "c1", [item("z9", kfid), item("a1", kfid), item("z9", kfid)], ["s1"]
        )
        assert ids(accepted) == ["z9", "a1"]
        assert ids(store.accept_page(kfid, "c2", [item("a1", kfid), item("s1", kfid), item("b5", kfid)])) == [
            "b5"
        ]
        assert store.load_cursor(kfid) == "c2"
        assert ids(store.pending(kfid)) == ["z9", "a1", "b5"]
    assert store.known_accounts() == sorted(KFS)
    assert store.pending_accounts() == sorted(KFS)
    for kfid in KFS:
        store.finish(kfid, "a1")
        assert ids(store.pending(kfid)) == ["z9", "b5"]
        assert store.accept_page(kfid, "c3", [item("a1", kfid)]) == []
        store.finish(kfid, "z9")
        store.finish(kfid, "b5")
    assert store.pending_accounts() == []
    assert store.known_accounts() == sorted(KFS)


def test_claims(store: RedisStore) -> None:
    for kfid in KFS:
        page = [item("m1", kfid), item("m2", kfid)]
        assert ids(store.accept_page(kfid, "c", page, owner="host-a", lease_seconds=LONG)) == ["m1", "m2"]
        assert ids(store.accept_page(kfid, "c", page, owner="host-a", lease_seconds=LONG)) == ["m1", "m2"]
        store.accept_page(kfid, "c", [item("m3", kfid)])
        assert ids(store.claim_pending(kfid, "host-b", 0.1)) == ["m3"]
        assert store.claim_pending(kfid, "host-a", LONG) == []  # m1, m2 are held by host-a already
        store.renew_claims(kfid, "host-b", ["m3", "m1"], LONG)
        store.finish(kfid, "m1")
        assert store.claim_pending(kfid, "host-c", LONG) == []
        assert ids(store.pending(kfid)) == ["m2", "m3"]


def test_concurrent_claims_across_instances(cluster: Cluster, store: RedisStore) -> None:
    other = RedisStore(cluster.url, prefix=store._prefix, cluster=True)
    for kfid in KFS:
        store.accept_page(kfid, "c", [item(f"m{i}", kfid) for i in range(50)])
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def run(s: RedisStore, owner: str) -> None:
        barrier.wait(timeout=5)
        got[owner] = [f"{kfid}/{m}" for kfid in KFS for m in ids(s.claim_pending(kfid, owner, LONG))]

    threads = [threading.Thread(target=run, args=((store, other)[n % 2], f"host-{n}")) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    everything = [m for claimed in got.values() for m in claimed]
    assert len(got) == 4
    assert sorted(everything) == sorted(f"{kfid}/m{i}" for kfid in KFS for i in range(50))
    other.close()


def test_locks_and_pull_requests(store: RedisStore) -> None:
    for kfid in KFS:
        assert store.try_lock(kfid, "host-a", 30)
        assert not store.try_lock(kfid, "host-b", 30)
        assert store.try_lock(kfid, "host-a", 60)  # extends
        store.unlock(kfid, "host-b")
        assert not store.try_lock(kfid, "host-b", 30)
        store.unlock(kfid, "host-a")
        assert store.try_lock(kfid, "host-b", 30)
        store.request_pull(kfid, f"token-1-{kfid}")
        store.request_pull(kfid, f"token-2-{kfid}")
    for kfid in KFS:
        assert store.take_pull_request(kfid) == f"token-2-{kfid}"
        assert store.take_pull_request(kfid) is None


def test_values(store: RedisStore) -> None:
    keys = [f"takeover:{kfid}" for kfid in KFS] + ["plan:{odd}:m1", "plan:m2"]
    for n, key in enumerate(keys):
        store.set_value(key, f"v{n}", None if n % 2 else 60)
    assert [store.get_value(key) for key in keys] == [f"v{n}" for n in range(len(keys))]
    store.set_value(keys[0], None, None)
    store.set_value("never-set", None, None)
    assert store.get_value(keys[0]) is None
    assert store.get_value(keys[1]) == "v1"


def test_state_is_shared_by_a_new_instance(cluster: Cluster, store: RedisStore) -> None:
    for kfid in KFS:
        store.accept_page(kfid, f"c-{kfid}", [item("m1", kfid), item("m2", kfid)])
        store.finish(kfid, "m1")
    store.set_value("k", "v", None)
    again = RedisStore(cluster.url, prefix=store._prefix, cluster=True)
    assert again.known_accounts() == sorted(KFS)
    for kfid in KFS:
        assert again.load_cursor(kfid) == f"c-{kfid}"
        assert ids(again.pending(kfid)) == ["m2"]
    assert again.get_value("k") == "v"
    again.close()


# --- a master down: the cluster is down until it is back (or its replica promoted) ------------------


def test_a_master_down_is_store_unavailable_and_waited_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="channel.wechatcom_kf.store.resilient")
    c = Cluster(tmp_path, node_timeout_ms=1000).create()
    try:
        store = RedisStore(c.url, prefix="down:", cluster=True)
        for kfid in KFS:
            store.accept_page(kfid, "c", [item("m1", kfid)])
        c.stop_node(1)  # no replica: its slot is served by nobody, so every node says CLUSTERDOWN
        c.wait_state("fail", [0, 2])
        # The stopped node's own account: connection refused. Every other key: CLUSTERDOWN, after
        # redis-py's own retries (a few seconds).
        down_node = Call(lambda: store.load_cursor(KFS[1])).wait(30).error
        live_node = Call(lambda: store.get_value("k")).wait(30).error
        resilient = ResilientStore(store)
        blocked = Call(lambda: resilient.set_value("k", "v", None))

        def failed_or_retrying() -> bool:
            return not blocked.running or any(
                r.levelno == logging.WARNING and r.name.endswith("resilient") for r in caplog.records
            )

        wait_until(failed_or_retrying, 30, "the set_value to fail or to start retrying")
        c.start_node(1)  # back with its saved cluster config (and no data: no persistence)
        c.wait_state("ok", [0, 1, 2])
        blocked.wait(30)
        assert isinstance(down_node, StoreUnavailable), repr(down_node)
        assert isinstance(live_node, StoreUnavailable), repr(live_node)  # CLUSTERDOWN passes
        assert blocked.error is None, f"not waited out: {type(blocked.error).__name__}: {blocked.error}"
        assert resilient.get_value("k") == "v"
        assert store.load_cursor(KFS[0]) == "c"
        store.close()
    finally:
        c.terminate()
