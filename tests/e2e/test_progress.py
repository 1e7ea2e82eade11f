"""The dashboard's figures move as annotations arrive, with a real Label Studio 1.23.

Annotations are made through Label Studio's ``/next`` and API, reach the
backend by webhook, the worker retrains and pushes, and its low-priority
evaluate job records the progress that ``/status``, ``/dashboard`` and
``/metrics`` show.
"""

from __future__ import annotations

import httpx
import pytest

from harness.stack import choice, make_project, synced, wait_for

pytestmark = pytest.mark.e2e

N_TASKS = 300
ROUNDS, PER_ROUND = 3, 20


def progress_at(stack, pid: int, n_labeled: int):
    """The progress summary once the evaluate job has evaluated the version trained on ``n_labeled`` labels.

    An evaluation of the version before it can finish after the last label arrived: it then
    counts ``n_labeled`` labeled tasks but its curve ends at the version it evaluated.
    """
    status = stack.status(pid)
    prog = status.get("progress") or {}
    current = status.get("current") or {}
    done = (prog.get("labeled_tasks") == n_labeled and current.get("labeled_tasks") == n_labeled
            and prog.get("version") == status.get("current_version"))
    return prog if done else False


def test_dashboard_numbers_move_as_annotations_arrive(ls, stack):
    pid, truth = make_project(ls, "progress e2e", N_TASKS, seed=11)
    ls.connect_ml_backend(pid, stack.url, title="active learning")
    wait_for(lambda: synced(ls, stack, pid, 0), 90, what="the cold-start version in Label Studio")
    page = httpx.get(f"{stack.url}/dashboard/{pid}", timeout=30).text
    assert "No trained model has been evaluated yet" in page

    labeled = 0
    seen = []
    for _ in range(ROUNDS):
        for _ in range(PER_ROUND):
            task = ls.next_task(pid)
            ls.annotate(task["id"], choice(truth[task["id"]][1]))
            labeled += 1
        wait_for(lambda: synced(ls, stack, pid, labeled), 120, what=f"a version trained on {labeled} labels")
        prog = wait_for(lambda: progress_at(stack, pid, labeled), 120, what=f"progress recorded at {labeled} labels")
        seen.append(prog)
        page = httpx.get(f"{stack.url}/dashboard/{pid}", timeout=30).text
        assert f"<b>{labeled:,}</b>" in page  # the labeled-tasks figure on the page
        for plot_id in ("plot-learning-curve", "plot-savings", "plot-kappa", "plot-labels"):
            assert f'<svg id="{plot_id}"' in page

    print("labels, curve points, kappa, cv accuracy, control outcomes:",
          [(p["labeled_tasks"], len(p["curve"]), p["kappa"], p["cv"].get("accuracy"), p["control_outcomes"])
           for p in seen])
    # the learning curve gains a point per trained version that was evaluated, and never loses one
    lengths = [len(p["curve"]) for p in seen]
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0]
    assert [p["labeled_tasks"] for p in seen] == [PER_ROUND * (i + 1) for i in range(ROUNDS)]
    assert seen[-1]["curve"][-1]["labels"] == ROUNDS * PER_ROUND
    # kappa between successive models exists from the second evaluated version on, on a fixed stop set
    assert seen[0]["stop_set"] == seen[-1]["stop_set"] > 0
    assert all(p["kappa"] is not None and -1 <= p["kappa"] <= 1 for p in seen[1:])
    assert len({p["version"] for p in seen}) == ROUNDS
    assert sum(sum(p["label_distribution"]["sentiment"].values()) for p in seen[-1:]) == ROUNDS * PER_ROUND
    # the annotations' real timestamps give a throughput
    assert seen[-1]["throughput"]["last_hour"] >= ROUNDS * PER_ROUND
    metrics = httpx.get(f"{stack.url}/metrics", timeout=30).text
    assert f'al_project_labeled_tasks{{project="{pid}"}} {float(ROUNDS * PER_ROUND)}' in metrics
    index = httpx.get(f"{stack.url}/dashboard", timeout=30).text
    assert f'href="/dashboard/{pid}"' in index
