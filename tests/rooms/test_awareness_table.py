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
