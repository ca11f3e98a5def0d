"""Typed access to one Cloud Datastore database for the Datastore store.

This module is the boundary with ``google-cloud-datastore``: it imports the
client lazily (so ``import sparkles_core`` stays light and a missing ``[gcp]``
extra becomes one clear :class:`~sparkles_core.errors.BackendError`), turns
every ``google.api_core`` error into a one-line
:class:`~sparkles_core.errors.StoreError`, splits reads and writes into the
service's per-request limits and retries transactions that lost a race.

The client acts with the credentials of the configured
``service_account_key``, else with Application Default Credentials (see
:mod:`sparkles_core.config.credentials`); against the emulator
(``DATASTORE_EMULATOR_HOST``) with none.

Vocabulary: a *location* is project, database and namespace, as named by the
URL ``datastore://PROJECT[/DATABASE][?namespace=NAMESPACE]``.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from sparkles_core.config.credentials import google_credentials
from sparkles_core.errors import BackendError, StoreError

if TYPE_CHECKING:
    from google.cloud.datastore import Entity, Key, Transaction

__all__ = ["Contended", "Datastore", "DatastoreLocation", "Filter"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# One (property, operator, value) condition of a query.
Filter = tuple[str, str, object]

# Service limits: a commit holds at most 500 mutations, a lookup 1,000 keys.
MAX_WRITES = 500
MAX_READS = 1000

# A lost race is retried this many times in all, sleeping about 50 ms, then
# 100 ms, ... (with jitter) in between: enough to ride out a burst of workers
# claiming at once, short enough that a caller stuck behind a hot entity hears
# about it within seconds.
_TRIES = 6
_FIRST_PAUSE_S = 0.05

_INSTALL = "pip install 'snakemake-executor-plugin-sparkles[gcp]'"
# The client refuses explicit credentials when this points at an emulator.
_EMULATOR_HOST = "DATASTORE_EMULATOR_HOST"

# Advice by the class name of the google.api_core error, first match wins.
_ADVICE = {
    "PermissionDenied": "give the account the Datastore User role on the project",
    "Unauthenticated": "run 'gcloud auth application-default login'",
    "NotFound": "check that the project has a Datastore database of that name",
    "FailedPrecondition": "create the indexes: gcloud datastore indexes create "
    "sparkles_core/store/index.yaml",
    "Aborted": "too many processes changed the same records at once; try again",
    "DeadlineExceeded": "the service did not answer in time; try again",
    "ServiceUnavailable": "the service is unreachable; check the network",
    "InvalidArgument": "a record is malformed or larger than 1 MiB",
    "ResourceExhausted": "the project's Datastore quota is spent; try later",
}


class Contended(StoreError):
    """A transaction kept losing the race for its records to other writers."""


@dataclass(frozen=True)
class DatastoreLocation:
    """Project, database and namespace that hold a store's records."""

    project: str
    database: str = ""
    namespace: str = ""

    @classmethod
    def from_url(cls, url: str) -> DatastoreLocation:
        """Parse ``datastore://PROJECT[/DATABASE][?namespace=NAMESPACE]``."""
        parts = urlsplit(url)
        database = parts.path.strip("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        if (
            parts.scheme != "datastore"
            or not parts.netloc
            or "/" in database
            or set(query) - {"namespace"}
            or any(len(values) > 1 for values in query.values())
            or parts.fragment
        ):
            raise BackendError(
                f"The store URL {url!r} is not 'datastore://PROJECT', "
                "'datastore://PROJECT/DATABASE' or either with "
                "'?namespace=NAME'; fix the URL.",
                url=url,
            )
        namespace = query.get("namespace", [""])[0]
        return cls(parts.netloc, "" if database == "(default)" else database, namespace)

    @property
    def url(self) -> str:
        """Return the URL that names this location."""
        url = f"datastore://{self.project}"
        if self.database:
            url += f"/{self.database}"
        if self.namespace:
            url += f"?namespace={self.namespace}"
        return url


class Datastore:
    """One database and namespace, with typed calls and translated errors."""

    def __init__(self, location: DatastoreLocation) -> None:
        self.location = location
        module = _import_datastore()
        emulated = bool(os.environ.get(_EMULATOR_HOST))
        credentials = None if emulated else google_credentials()
        with self.guard("connect"):
            # The client stays untyped (Any) here: google-cloud-datastore has
            # no annotations, and this class is what gives it types.
            self._client: Any = module.Client(
                project=location.project,
                database=location.database or None,
                namespace=location.namespace or None,
                credentials=credentials,
            )
        self._entity_type: Any = module.Entity

    def key(self, kind: str, name: str) -> Key:
        """Return the key of the ``kind`` record called ``name``."""
        key: Key = self._client.key(kind, name)
        return key

    def entity(
        self, key: Key, values: dict[str, object], unindexed: Sequence[str] = ()
    ) -> Entity:
        """Return an entity holding ``values``, not indexing ``unindexed``."""
        entity: Entity = self._entity_type(key, exclude_from_indexes=tuple(unindexed))
        entity.update(values)
        return entity

    def get(self, key: Key, transaction: Transaction | None = None) -> Entity | None:
        """Return the entity at ``key``, or None."""
        with self.guard(f"read {key.kind} {key.name!r}"):
            found: Entity | None = self._client.get(key, transaction=transaction)
        return found

    def get_multi(
        self, keys: Sequence[Key], transaction: Transaction | None = None
    ) -> list[Entity]:
        """Return the entities that exist among ``keys``, in no given order."""
        found: list[Entity] = []
        for start in range(0, len(keys), MAX_READS):
            chunk = list(keys[start : start + MAX_READS])
            with self.guard(f"read {len(chunk)} records"):
                found += self._client.get_multi(chunk, transaction=transaction)
        return found

    def put(self, entity: Entity, transaction: Transaction) -> None:
        """Add writing ``entity`` to ``transaction``, which commits it."""
        staged: Any = transaction
        staged.put(entity)

    def put_multi(self, entities: Sequence[Entity], action: str) -> None:
        """Write ``entities`` outside any transaction, one commit per 500."""
        for start in range(0, len(entities), MAX_WRITES):
            with self.guard(action):
                self._client.put_multi(list(entities[start : start + MAX_WRITES]))

    def delete_multi(self, keys: Sequence[Key], action: str) -> None:
        """Delete ``keys`` outside any transaction; missing ones are no error."""
        for start in range(0, len(keys), MAX_WRITES):
            with self.guard(action):
                self._client.delete_multi(list(keys[start : start + MAX_WRITES]))

    def query(
        self,
        kind: str,
        filters: Sequence[Filter] = (),
        order: Sequence[str] = (),
        keys_only: bool = False,
    ) -> list[Entity]:
        """Return every entity of ``kind`` that passes ``filters``, in order."""
        with self.guard(f"query {kind} records"):
            return list(self._query(kind, filters, order, keys_only).fetch())

    def query_page(
        self,
        kind: str,
        filters: Sequence[Filter],
        order: Sequence[str],
        limit: int,
        cursor: bytes | None = None,
    ) -> tuple[list[Key], bytes | None]:
        """Return up to ``limit`` keys after ``cursor``, and the next cursor."""
        with self.guard(f"query {kind} records"):
            found = self._query(kind, filters, order, keys_only=True).fetch(
                limit=limit, start_cursor=cursor
            )
            page = [entity.key for entity in next(found.pages, ())]
        more = len(page) == limit and found.next_page_token is not None
        return page, found.next_page_token if more else None

    def distinct(self, kind: str, filters: Sequence[Filter], name: str) -> list[object]:
        """Return the distinct values of ``name`` among entities passing ``filters``.

        A projection query: it reads one index entry per value, not the
        entities, and needs a composite index of the filters then ``name``.
        """
        query = self._query(kind, filters)
        query.projection = [name]
        query.distinct_on = [name]
        with self.guard(f"query {kind} records"):
            return [entity[name] for entity in query.fetch()]

    def count(self, kind: str, filters: Sequence[Filter]) -> int:
        """Return how many entities of ``kind`` pass ``filters``, server-side."""
        query = self._query(kind, filters)
        with self.guard(f"count {kind} records"):
            counted = self._client.aggregation_query(query).count(alias="n")
            return sum(
                int(result.value) for batch in counted.fetch() for result in batch
            )

    def transact(
        self, body: Callable[[Transaction], T], action: str, tries: int = _TRIES
    ) -> T:
        """Run ``body`` in a transaction, retrying a lost race ``tries`` times."""
        for attempt in range(1, tries + 1):
            try:
                return self._transact_once(body, action)
            except Contended:
                if attempt == tries:
                    raise
                logger.debug("Store: %s lost a race (try %d)", action, attempt)
                _pause(attempt)
        raise AssertionError("unreachable: the last try returns or raises")

    def close(self) -> None:
        """Drop the client's connections."""
        self._client.close()

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Turn Google client errors raised inside into one-line StoreErrors."""
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        try:
            yield
        except api.Aborted as exc:
            raise Contended(self._explain(action, exc)) from exc
        except (api.GoogleAPICallError, api.RetryError) as exc:
            raise StoreError(self._explain(action, exc)) from exc
        except auth.GoogleAuthError as exc:
            raise StoreError(
                f"Store {self.location.url!r}: could not {action}: no usable "
                "Google credentials; run 'gcloud auth application-default "
                "login', or set DATASTORE_EMULATOR_HOST to use an emulator."
            ) from exc

    def _transact_once(self, body: Callable[[Transaction], T], action: str) -> T:
        """Run ``body`` in one transaction: commit if it returns, else roll back."""
        # Not begin_later, which would save a request: the Firestore emulator
        # then times out on the locks of the transaction's own first read.
        transaction: Any = self._client.transaction()
        with self.guard(action):
            transaction.begin()
            try:
                result = body(transaction)
            except BaseException:
                _roll_back(transaction, action)
                raise
            transaction.commit()
        return result

    def _query(
        self,
        kind: str,
        filters: Sequence[Filter] = (),
        order: Sequence[str] = (),
        keys_only: bool = False,
    ) -> Any:
        """Return an unrun query of ``kind``."""
        from google.cloud.datastore import query as queries

        condition: Any = queries.PropertyFilter
        query = self._client.query(kind=kind)
        for name, operator, value in filters:
            query.add_filter(filter=condition(name, operator, value))
        if order:
            query.order = list(order)
        if keys_only:
            query.keys_only()
        return query

    def _explain(self, action: str, exc: Exception) -> str:
        """Return one line saying what failed, why, and what to do."""
        name = type(exc).__name__
        advice = _ADVICE.get(name, "check the project, database and credentials")
        detail = getattr(exc, "message", None) or str(exc)
        detail = " ".join(str(detail).split())[:200]
        return (
            f"Store {self.location.url!r}: could not {action} "
            f"({name}: {detail}); {advice}."
        )


def _import_datastore() -> Any:
    """Return the ``google.cloud.datastore`` module, or say how to install it."""
    try:
        return importlib.import_module("google.cloud.datastore")
    except ImportError as exc:
        raise BackendError(
            "The Datastore store needs the Google Cloud client libraries; "
            f"install them with: {_INSTALL}",
        ) from exc


def _roll_back(transaction: Any, action: str) -> None:
    """Roll back ``transaction``; a failure only means it is already gone."""
    from google.api_core import exceptions as api

    try:
        transaction.rollback()
    except api.GoogleAPICallError as exc:
        # The service drops an unfinished transaction by itself soon after.
        logger.debug("Store: rolling back %s failed (%s)", action, exc)


def _pause(attempt: int) -> None:
    """Sleep before retry ``attempt + 1``: doubling, with full jitter."""
    time.sleep(random.uniform(0, _FIRST_PAUSE_S * 2**attempt))
