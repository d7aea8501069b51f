from collab.rooms.awareness import AwarenessTable
from collab.wire import awareness as aw


def test_table_clock_rules_and_removal() -> None:
    t = AwarenessTable()
    assert t.apply([aw.Entry(1, 2, '{"a":1}')]) == [aw.Entry(1, 2, '{"a":1}')]
    assert t.apply([aw.Entry(1, 1, '{"a":0}')]) == []  # older clock ignored
    assert t.apply([aw.Entry(1, 2, '{"a":2}')]) == []  # same clock, not a removal
    assert t.apply([aw.Entry(1, 2, "null")]) == [aw.Entry(1, 2, "null")]
    assert len(t) == 0
    t.apply([aw.Entry(3, 0, "{}")])
    assert t.remove({3, 4}) == [aw.Entry(3, 1, "null")]
    assert t.snapshot() == []


def test_removed_clients_are_remembered_and_the_memory_is_bounded() -> None:
    from collab.rooms.awareness import TOMBSTONES

    table = AwarenessTable()
    table.apply([aw.Entry(1, 5, "{}")])
    assert table.remove({1}) == [aw.Entry(1, 6, "null")]
    assert table.apply([aw.Entry(1, 5, "{}")]) == []  # a stale echo
    assert table.apply([aw.Entry(1, 6, "{}")]) == []  # the removal's own clock
    assert table.apply([aw.Entry(1, 7, "{}")]) == [aw.Entry(1, 7, "{}")]  # a later state is new
    for cid in range(100, 100 + TOMBSTONES + 10):
        table.apply([aw.Entry(cid, 1, "{}"), aw.Entry(cid, 2, "null")])
    assert len(table._removed) == TOMBSTONES
