"""Tasks of the demo: washing and inspecting monster trucks."""

import logging
import random
import time

from django_convoy import convoy_processor, convoy_task, current_job

logger = logging.getLogger(__name__)


@convoy_task(queue="monsterTrucks", job_id=lambda truck_id: f"truck-{truck_id}")
def wash_truck(truck_id: int) -> str:
    """Wash one truck; takes a moment, like real washing."""
    time.sleep(random.uniform(0.2, 0.8))
    job = current_job()
    attempt = job.attempt if job else 0
    logger.info("washed truck %s (attempt %s)", truck_id, attempt)
    return f"truck {truck_id} is clean"


@convoy_task(queue="monsterTrucks", job_id=lambda truck_id: f"inspect-{truck_id}")
def inspect_truck(truck_id: int) -> None:
    """Inspect a truck; trucks with an id divisible by 13 fail inspection."""
    time.sleep(random.uniform(0.1, 0.3))
    if truck_id % 13 == 0:
        raise ValueError(f"truck {truck_id} has a cracked axle")


@convoy_processor("monsterTrucks")
def process_plain_job(job_id: str, payload: object) -> None:
    """Handle jobs added with ``get_queue("monsterTrucks").add_job(...)``."""
    logger.info("plain job %s with payload %r", job_id, payload)
