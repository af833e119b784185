import pytest

from deeprl import elo


def test_course_example_k16():
    # Unit 7, "The ELO Score": A 2600, B 2300, K=16.
    assert round(elo.expected_score(2600, 2300), 3) == 0.849
    assert round(elo.expected_score(2300, 2600), 3) == 0.151
    a, b = elo.update(2600, 2300, "win", k=16)
    assert (round(a), round(b)) == (2602, 2298)
    assert a == pytest.approx(2600 + 16 * (1 - 0.8490204427886767))
    a, b = elo.update(2600, 2300, "loss", k=16)
    assert (round(a), round(b)) == (2586, 2314)


def test_points_are_conserved_and_draws_favour_the_weaker():
    a, b = elo.update(1500, 1200, "draw", k=32)
    assert a + b == pytest.approx(2700)
    assert a < 1500 and b > 1200
    assert elo.update(1200, 1200, 0.5) == (1200, 1200)


def test_initial_rating_and_k_are_parameters():
    assert elo.INITIAL_ELO == 1200
    small = elo.rating_change(1200, 1200, "win", k=1)
    assert small == pytest.approx(0.5)
    assert elo.rating_change(1200, 1200, "win", k=32) == pytest.approx(16)
    a, b = elo.update_many(1200, 1200, ["win", "win", "loss"], k=16)
    assert a + b == pytest.approx(2400) and a > 1200


def test_bad_results_are_refused():
    with pytest.raises(ValueError):
        elo.score("victory")
    with pytest.raises(ValueError):
        elo.score(1.5)
    assert elo.team_rating([1200, 1300]) == 1250
