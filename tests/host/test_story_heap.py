"""Headroom at 80 KB (issue 16): the whole story (provision, register, standby TLS, WAN cut ->
SRST, restore -> re-home, standby again; memcheck.story on the loopback lab) and
provisioning's heaviest boot (a second boot with both trust lists signed again) pass with
the agent from the image (memcheck.image: a ROMFS at /rom, as a board without PSRAM runs it;
docs/decisions.md, "Issue 16: the story at 80 KB") at EVERY heap size from the smallest that
passes up to the target and a margin above it, 1 KB apart: a fragmented heap is not
monotonic, so one size passing says nothing of the next.

`make test` runs the sizes around the target; the full sweeps (a story run takes 15 s) are
marked long. Figures beside the target: bench/memory.py. The same story on the faithful
board without PSRAM at its real heap: tests/scenarios/test_faithful.py (wan-blackhole on
virtual:wt32-eth01, 112K)."""
from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from host_tools import memcheck

TARGET_K = 80
MARGIN_K = 8
# The smallest heaps measured from the image (docs/decisions.md, "Issue 16: the story at
# 80 KB, with room"): the sweeps start there. Since the phone's identity stays in its files,
# the story holds from 77 KB (36 runs of 36 at 77 KB; 76 KB failed 11 of 21, 75 KB every run),
# so `make test` checks the target itself, 3 KB above the smallest.
STORY_MIN_K = 77
HEAVIEST_BOOT_MIN_K = 60
STORY_WORKERS = 3           # a story run mostly waits on the lab's timers
BOOT_WORKERS = 2            # a boot is RSA: CPU


@pytest.fixture(scope="module")
def fw() -> Path:
    return memcheck.firmware()


@pytest.fixture(scope="module")
def image(fw: Path) -> memcheck.Image:
    return memcheck.image(fw)


@pytest.fixture(scope="module")
def labs(tmp_path_factory):
    """One provisioning lab per worker: a heaviest boot signs the served trust lists again
    for its own second boot, which another boot must not see."""
    with ExitStack() as stack:
        q: queue.Queue = queue.Queue()
        for i in range(BOOT_WORKERS):
            q.put(stack.enter_context(
                memcheck.ProvisionLab(tmp_path_factory.mktemp(f"storyheap{i}"))))
        yield q


def _failing(run, sizes_k: list[int], workers: int) -> dict[int, str]:
    """{size in KB: why} of the sizes at which run(size in bytes) fails."""
    with ThreadPoolExecutor(workers) as pool:
        results = dict(zip(sizes_k, pool.map(lambda k: run(k * 1024), sizes_k)))
    return {k: why for k, why in results.items() if why}


def _story(fw: Path, image: memcheck.Image, work: Path):
    def run(heap: int) -> str:
        r = memcheck.story(fw, heap, work / str(heap), sample=False, image=image)
        return "" if r.ok else f"stopped before {r.step}: {r.output[-400:]}"
    return run


def _heaviest_boot(fw: Path, image: memcheck.Image, labs: queue.Queue):
    def run(heap: int) -> str:
        lab = labs.get()
        try:
            r = lab.second_boot(fw, heap, new_lists=True, image=image)
        finally:
            labs.put(lab)
        # the heaviest boot: both lists verified again, not found unchanged
        again = [e for e in r.events if e.ev == "ctl_accepted" and "unchanged" not in e.fields]
        return "" if r.ok and len(again) == 2 else r.output[-400:]
    return run


def test_story_from_the_image_around_the_target(fw, image, tmp_path):
    sizes = list(range(TARGET_K, TARGET_K + 3))
    assert _failing(_story(fw, image, tmp_path), sizes, STORY_WORKERS) == {}


def test_heaviest_boot_from_the_image_around_the_target(fw, image, labs):
    sizes = list(range(TARGET_K - 4, TARGET_K + 5))
    assert _failing(_heaviest_boot(fw, image, labs), sizes, BOOT_WORKERS) == {}


@pytest.mark.long("the whole story at every 1 KB from its smallest heap to the target + 8 KB: "
                  "12 runs of 15 s")
def test_story_from_the_image_at_every_heap_from_the_minimum(fw, image, tmp_path):
    sizes = list(range(STORY_MIN_K, TARGET_K + MARGIN_K + 1))
    assert _failing(_story(fw, image, tmp_path), sizes, STORY_WORKERS) == {}


@pytest.mark.long("provisioning's heaviest boot at every 1 KB from its smallest heap to the "
                  "target + 8 KB: 29 boots, each after a first boot")
def test_heaviest_boot_from_the_image_at_every_heap_from_the_minimum(fw, image, labs):
    sizes = list(range(HEAVIEST_BOOT_MIN_K, TARGET_K + MARGIN_K + 1))
    assert _failing(_heaviest_boot(fw, image, labs), sizes, BOOT_WORKERS) == {}
