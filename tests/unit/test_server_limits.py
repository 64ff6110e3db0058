import pytest
from stemserve.core.errors import InvalidOptionError, ResourceExhaustedError
from stemserve.server.limits import ConcurrencyLimits


def test_per_key_limit_then_global_limit():
    limits = ConcurrencyLimits(max_in_flight=3, max_per_key=2)
    with limits.slot("a"), limits.slot("a"):
        with pytest.raises(ResourceExhaustedError, match="'a' may have at most 2 songs in flight"), limits.slot("a"):
            pass
        with limits.slot("b"):
            assert (limits.in_flight, limits.in_flight_for("a"), limits.in_flight_for("b")) == (3, 2, 1)
            expected = "at most 3 songs in flight, got a request while 3"
            with pytest.raises(ResourceExhaustedError, match=expected), limits.slot("c"):
                pass
        assert limits.in_flight == 2
    assert limits.in_flight == 0 and limits.in_flight_for("a") == 0


def test_slots_are_given_back_when_the_block_raises():
    limits = ConcurrencyLimits(max_in_flight=1, max_per_key=1)
    with pytest.raises(ValueError), limits.slot("a"):
        raise ValueError("boom")
    with limits.slot("a"):
        assert limits.in_flight == 1


def test_anonymous_callers_only_count_globally():
    limits = ConcurrencyLimits(max_in_flight=2, max_per_key=1)
    with limits.slot(None), limits.slot(None):
        assert limits.in_flight == 2
        with pytest.raises(ResourceExhaustedError, match="at most 2 songs"), limits.slot(None):
            pass


def test_limits_must_be_positive():
    with pytest.raises(InvalidOptionError, match="max_in_flight=0"):
        ConcurrencyLimits(max_in_flight=0, max_per_key=1)
