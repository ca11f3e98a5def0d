"""Backends and rewrites arrive through the same hooks a plugin would use."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from sparkles_core.client import Client
from sparkles_core.errors import BackendError
from sparkles_core.hooks import hookimpl
from sparkles_core.models import Job, JobSpec, Task, TaskSpec
from sparkles_core.monitor.events import LifecycleEvents
from sparkles_core.plugins import open_store, plugin_manager
from sparkles_core.store.base import Store
from sparkles_core.store.sqlite import SQLiteStore
from tests.core.test_monitor import Recorder


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
    events.finish()

    assert observer.jobs == []
    assert observer.tasks == []
