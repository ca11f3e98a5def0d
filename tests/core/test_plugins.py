"""Backends and rewrites arrive through the same hooks a plugin would use."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from sparkles_core.client import Client
from sparkles_core.errors import BackendError
from sparkles_core.hooks import hookimpl
from sparkles_core.models import Job, JobSpec, ResourceUsage, Task, TaskSpec
from sparkles_core.monitor.events import LifecycleEvents
from sparkles_core.monitor.runner import Runner
from sparkles_core.plugins import open_store, plugin_manager
from sparkles_core.store.base import Completion, Store
from sparkles_core.store.sqlite import SQLiteStore
from tests.core.store_helpers import CountingStore
from tests.core.test_monitor import Recorder

real_time = time.time


class MemoryishStore:
    """A plugin that serves ``mem://`` by delegating to SQLite in a temp dir."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def sparkles_store_backends(self) -> Mapping[str, Callable[[str], Store]]:
        return {"mem": lambda url: SQLiteStore(self.folder / "mem.db")}


class Tagger:
    """A plugin that rewrites every task and watches submissions."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    @hookimpl
    def sparkles_prepare_task(self, job: JobSpec, task: TaskSpec) -> TaskSpec:
        return task.model_copy(update={"env": {**task.env, "TAGGED": job.name}})

    @hookimpl
    def sparkles_job_submitted(self, job: Job) -> None:
        self.submitted.append(job.id)


@pytest.fixture
def registered() -> Iterator[Callable[[object], None]]:
    names: list[str] = []

    def register(plugin: object) -> None:
        names.append(plugin_manager().register(plugin) or "")

    yield register
    for name in names:
        plugin_manager().unregister(name=name)


def test_a_plugin_adds_a_store_scheme(
    tmp_path: Path, registered: Callable[[object], None]
) -> None:
    registered(MemoryishStore(tmp_path))
    store = open_store("mem://anything")
    assert isinstance(store, SQLiteStore)
    store.close()


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(BackendError, match=r"known schemes: .*sqlite") as info:
        open_store("nosuch://x")
    assert info.value.url == "nosuch://x"


def test_prepare_task_rewrites_and_submitted_is_announced(
    client: Client, registered: Callable[[object], None]
) -> None:
    tagger = Tagger()
    registered(tagger)

    client.submit(JobSpec(name="tagme", tasks=[TaskSpec(command="true")]), "tagme")

    task = client.store.get_task("tagme.1")
    assert task is not None
    assert task.spec.env == {"TAGGED": "tagme"}
    assert tagger.submitted == ["tagme"]


class Observer:
    """A plugin that records the lifecycle events a monitor fires."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, int | None]] = []
        self.jobs: list[tuple[str, Mapping[str, int]]] = []

    @hookimpl
    def sparkles_task_finished(self, task: Task) -> None:
        self.tasks.append((task.id, task.exit_code))

    @hookimpl
    def sparkles_job_finished(self, job: Job, counts: Mapping[str, int]) -> None:
        self.jobs.append((job.id, dict(counts)))


class Broken:
    """A plugin whose observers raise."""

    @hookimpl
    def sparkles_task_finished(self, task: Task) -> None:
        raise RuntimeError("observer bug")


def test_monitor_announces_each_finished_task_and_the_job_end(
    client: Client, registered: Callable[[object], None]
) -> None:
    observer = Observer()
    registered(observer)
    registered(Broken())
    tasks = [TaskSpec(command="true"), TaskSpec(command="exit 3")]
    job = client.submit(JobSpec(name="seen", tasks=tasks, nodes=2), "seen")

    client.wait(job, Recorder(), stream_logs=False)

    assert sorted(observer.tasks) == [("seen.1", 0), ("seen.2", 3)]
    [(job_id, counts)] = observer.jobs
    assert job_id == "seen"
    assert {status: n for status, n in counts.items() if n} == {"complete": 2}
    client.stop_cluster_if_idle(job.cluster)


def test_job_end_is_not_announced_for_an_interrupted_wait(
    client: Client, registered: Callable[[object], None]
) -> None:
    observer = Observer()
    registered(observer)
    spec = JobSpec(name="cut", tasks=[TaskSpec(command="sleep 30")], nodes=0)
    job = client.submit(spec, "cut")
    events = LifecycleEvents(client.store, [job], 0.1)

    assert events.poll(0.0) == 0.1
    events.finish(None)

    assert observer.jobs == []
    assert observer.tasks == []


def finish_next(client: Client, job: Job, exit_code: int = 0) -> str:
    """Claim the job's next task and complete it; return its id."""
    claimed = client.store.claim(job.cluster, "node-x", 60.0)
    assert claimed is not None
    now = time.time()
    done = Completion(exit_code, None, now, now, ResourceUsage(), result_key=None)
    assert client.store.complete(claimed.id, "node-x", done)
    return claimed.id


class ReadCounter:
    """Count the task records that ``finished_since`` returns from a store."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: list[int] = []
        real = store.finished_since

        def counted(job_ids: Iterable[str], since: float) -> list[Task]:
            found = real(job_ids, since)
            self.read.append(len(found))
            return found

        monkeypatch.setattr(store, "finished_since", counted)


def test_later_looks_skip_the_tasks_that_finished_long_before(
    client: Client,
    registered: Callable[[object], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    observer = Observer()
    registered(observer)
    spec = JobSpec(name="big", tasks=[TaskSpec(command="true")] * 30, nodes=0)
    job = client.submit(spec, "big")
    for _ in range(20):
        finish_next(client, job)
    reads = ReadCounter(client.store, monkeypatch)
    events = LifecycleEvents(client.store, [job], 0.1)
    events.poll(0.0)
    # A minute later, far behind the look's overlap of ten seconds.
    monkeypatch.setattr(time, "time", lambda: real_time() + 60)
    last = finish_next(client, job, exit_code=4)

    events.poll(0.0)  # still overlaps the first twenty, which are skipped
    events.poll(0.0)
    events.poll(0.0)

    assert reads.read == [20, 21, 1, 1]
    assert len(observer.tasks) == 21 and observer.tasks[-1] == (last, 4)


def test_a_task_reset_and_run_again_is_announced_again(
    client: Client, registered: Callable[[object], None]
) -> None:
    observer = Observer()
    registered(observer)
    job = client.submit(JobSpec(name="again", tasks=[TaskSpec(command="true")]))
    events = LifecycleEvents(client.store, [job], 0.1)
    finish_next(client, job, exit_code=1)
    events.poll(0.0)

    client.store.reset([f"{job.id}.1"])
    finish_next(client, job, exit_code=0)
    events.poll(0.0)
    events.poll(0.0)

    assert observer.tasks == [(f"{job.id}.1", 1), (f"{job.id}.1", 0)]


def test_finish_reads_nothing_when_no_plugin_listens(client: Client) -> None:
    job = client.submit(JobSpec(name="alone", tasks=[TaskSpec(command="true")]))
    finish_next(client, job)
    counting = CountingStore(client.store)
    events = LifecycleEvents(counting.as_store, [job], 0.1)

    events.poll(0.0)
    events.finish(None)

    assert counting.calls == {}


def test_an_interrupted_monitor_announces_nothing_and_reads_nothing(
    client: Client, registered: Callable[[object], None]
) -> None:
    observer = Observer()
    registered(observer)
    job = client.submit(JobSpec(name="cut", tasks=[TaskSpec(command="true")]))
    finish_next(client, job)
    broken = open_store(client.store.url)
    broken.close()  # every call fails, as a store out of reach would
    events = LifecycleEvents(broken, [job], 60.0)

    class Interrupt:
        name = "interrupt"

        def poll(self, now: float) -> float:
            raise KeyboardInterrupt

        def finish(self, error: BaseException | None) -> None:
            """Nothing to release."""

    with pytest.raises(KeyboardInterrupt):
        Runner([Interrupt(), events]).run()

    assert observer.jobs == [] and observer.tasks == []
