from django_convoy import get_queue


def test_added_job_is_queued_once():
    queue = get_queue("monsterTrucks")
    first, second = queue.add_job(1), queue.add_job(1)
    assert (first.id, first.added, first.state) == ("1", True, "queued")
    assert (second.added, second.state) == (False, "queued")
    assert queue.stats()["queued"] == 1
