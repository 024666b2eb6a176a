import pytest

from mirg.core.scoring import ItemScore, aggregate
from mirg.eval.benchmarks import EvalItem
from mirg.eval.chance import chance_metrics

BOX = (0.1, 0.1, 0.5, 0.5)


def item(key, n_images, target=1, task="t", box=BOX):
    return EvalItem(key, task, tuple(f"{i}.png" for i in range(n_images)), "q", box, target)


def test_image_chance_is_exact_one_over_n():
    items = [item(0, 2), item(1, 4), item(2, 3, target=None)]
    m = chance_metrics(items, [BOX])
    assert m["image_acc"] == pytest.approx(100 * (1 / 2 + 1 / 4 + 1) / 3)
    per_task = chance_metrics([item(0, 2), item(1, 4, task="u"), item(2, 4, task="u")], [BOX])
    assert per_task["tasks"]["t"]["image_acc"] == pytest.approx(50.0)
    assert per_task["tasks"]["u"]["image_acc"] == pytest.approx(25.0)


def test_box_chance_follows_the_prior():
    items = [item(0, 2), item(1, 4, task="u")]
    exact = chance_metrics(items, [BOX])  # the prior always draws the target box
    assert exact["tasks"]["t"]["acc@0.5"] == pytest.approx(50.0)
    assert exact["tasks"]["u"]["acc@0.7"] == pytest.approx(25.0)
    assert exact["average"]["acc@0.5"] == pytest.approx(37.5)
    assert exact["tasks"]["t"]["miou"] == pytest.approx(0.5)
    disjoint = chance_metrics(items, [(0.6, 0.6, 0.9, 0.9)])
    assert disjoint["average"]["acc@0.3"] == 0.0 and disjoint["average"]["miou"] == 0.0
    half = chance_metrics([item(0, 1)], [BOX, (0.6, 0.6, 0.9, 0.9)], draws=4000, seed=1)
    assert half["average"]["acc@0.5"] == pytest.approx(50.0, abs=3.0)
    assert set(half) == {"protocol", "tasks", "average", "missing", "image_acc"}


def test_chance_needs_a_prior_and_image_accuracy_counts_image_ok():
    with pytest.raises(ValueError, match="target boxes"):
        chance_metrics([item(0, 2)], [])
    scores = [
        ItemScore(0, "t", 0.9, True),
        ItemScore(1, "t", 0.0, False),
        ItemScore(2, "t", 0.0, None),
    ]
    assert aggregate(scores, "strict")["tasks"]["t"]["image_acc"] == pytest.approx(100 / 3)
