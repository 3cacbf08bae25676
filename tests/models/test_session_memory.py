import threading

from models.session_memory import SessionMemory


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keeps_at_most_max_turns_newest_last():
    mem = SessionMemory(max_turns=3, max_chars=10_000)
    for i in range(5):
        mem.add_turn("s", f"q{i}", f"a{i}")
    assert [t.user for t in mem.history("s")] == ["q2", "q3", "q4"]


def test_size_bound_drops_oldest_turns():
    mem = SessionMemory(max_turns=100, max_chars=50)
    for i in range(5):
        mem.add_turn("s", f"{i}" * 10, "x" * 10)  # 20 chars a turn
    turns = mem.history("s")
    assert [t.user[0] for t in turns] == ["3", "4"]
    # room reserved for the coming query pushes out one more
    assert [t.user[0] for t in mem.history("s", reserve_chars=15)] == ["4"]


def test_idle_session_expires_and_is_purged():
    clock = FakeClock()
    mem = SessionMemory(expires_in_seconds=3600, clock=clock)
    mem.add_turn("old", "q", "a")
    clock.now += 1800
    mem.add_turn("young", "q", "a")
    clock.now += 1801  # "old" idle for 3601 s, "young" for 1801 s
    assert mem.history("old") == []
    assert len(mem.history("young")) == 1
    assert len(mem) == 1


def test_session_count_is_bounded_lru():
    mem = SessionMemory(max_sessions=3)
    for name in ("a", "b", "c"):
        mem.add_turn(name, "q", "a")
    mem.add_turn("a", "q2", "a2")  # "a" becomes most recently used
    mem.add_turn("d", "q", "a")
    assert len(mem) == 3
    assert mem.history("b") == []
    assert len(mem.history("a")) == 2


def test_concurrent_sessions_keep_their_own_turns():
    mem = SessionMemory(max_turns=50, max_chars=100_000)

    def worker(n: int) -> None:
        for i in range(20):
            mem.add_turn(f"s{n}", f"{n}-{i}", "ok")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    for n in range(8):
        assert [t.user for t in mem.history(f"s{n}")] == [f"{n}-{i}" for i in range(20)]
