"""pytest-xdist scheduling that keeps one artifact's checks on one worker.

xdist's default (`--dist load`) hands out items one by one, so the parity, accuracy, size and ops
checks of one artifact land on different workers: each then loads the artifact, and waits on the
cache's lock for outputs the other is computing, while a core idles. Here an artifact's items (one
spec, one compress entry, on whichever targets and backends) form one scope that xdist's
LoadScopeScheduling sends whole to one worker, the scopes with the most work first. A worker then keeps to
its specs (`pick_scope`): its next scope is another artifact of a spec it works on while there is one, else a
spec no worker has started, and only at the end another worker's, so each worker reads, lays out and hashes
the inputs of its own specs, not of every spec. Scopes stay one per artifact, so the last ones still balance
the workers, as before.

The controller never collects, so a scope is read from the node id alone, as xdist's own
LoadGroupScheduling does: an item's name is `{target}-{backend}-{recipe}-{check}` (PlannedCheck.id),
and any of the four may hold '-', so the name is split with the names that can stand there (the
check kinds, the device profiles and the backends). A name that does not split one way only is its
own scope: grouping saves work, it never decides what is computed (the cache's locks do).

A run with no spec item keeps xdist's `load`, and an explicit `--dist` is always the user's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScheduling, LoadScopeScheduling  # imported only by the xdist hook
from xdist.workermanage import WorkerController

SPEC_SUFFIXES = (".yaml", ".yml")
UNBUILT = ("none", "candidate")  # the entries that make no artifact (compress.ORIGINAL, plan's CANDIDATE)
# rough work of one check of an artifact, against 1 for a check that runs the model (parity, accuracy, latency):
# only the order of scopes depends on it, never what is computed
_LIGHT_CHECKS = {"size": 0.25, "ops": 0.5}
_BUILD_WORK = 1.0  # making an artifact (the original's entry makes none)


@dataclass(frozen=True)
class ItemNames:
    """The names an edgecheck item's name is built from: check kinds, and the (target, backend) pairs a
    spec may name (every device profile with every backend)."""

    checks: tuple[str, ...]
    runs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scope:
    """Where an item goes: `key` is the scope xdist groups by; `spec` and `recipe` are set for an edgecheck item."""

    key: str
    spec: str | None = None
    recipe: str | None = None
    check: str | None = None


def could_be_spec_item(nodeid: str) -> bool:
    """A node id of an item collected from a YAML file (cheap: decides whether names are loaded at all)."""
    path, found, _ = nodeid.rpartition("::")
    return bool(found) and path.endswith(SPEC_SUFFIXES)


def item_scope(nodeid: str, names: ItemNames) -> Scope:
    """The artifact an item checks, as 'specs/a.yaml::int8-dynamic' for 'specs/a.yaml::host-onnxruntime-int8-dynamic-
    parity'; the node id itself for any other item, or a name that splits in more than one way."""
    if not could_be_spec_item(nodeid):
        return Scope(nodeid)
    path, _, name = nodeid.rpartition("::")
    found = set()
    for check in names.checks:
        if not name.endswith(f"-{check}"):
            continue
        rest = name[:-len(check) - 1]
        for target, backend in names.runs:
            prefix = f"{target}-{backend}-"
            if rest.startswith(prefix) and len(rest) > len(prefix):
                found.add((rest[len(prefix):], check))
    if len({recipe for recipe, _ in found}) != 1:
        return Scope(nodeid)
    ((recipe, check), *_) = sorted(found, key=lambda f: -len(f[1]))  # one recipe: the longest check that fits it
    return Scope(f"{path}::{recipe}", spec=path, recipe=recipe, check=check)


def scope_order(nodeids: Sequence[str], names: ItemNames) -> list[str]:
    """The scopes of these items, in the order to hand them out: each spec's heaviest artifact before any spec's
    second (two workers starting on one spec would wait for each other on its reference outputs), and among
    those the heaviest first, so the last scopes handed out are the shortest."""
    work: dict[str, float] = {}
    spec_of: dict[str, str | None] = {}
    for nodeid in nodeids:
        scope = item_scope(nodeid, names)
        if scope.key not in work:
            work[scope.key] = 0.0 if scope.recipe is None or scope.recipe in UNBUILT else _BUILD_WORK
            spec_of[scope.key] = scope.spec
        work[scope.key] += _LIGHT_CHECKS.get(scope.check or "", 1.0)
    rank: dict[str, int] = {}
    by_spec: dict[str | None, list[str]] = {}
    for key in work:
        by_spec.setdefault(spec_of[key], []).append(key)
    for spec, keys in by_spec.items():
        for index, key in enumerate(sorted(keys, key=lambda k: -work[k])):
            rank[key] = index if spec is not None else 0
    first_seen = {key: index for index, key in enumerate(work)}
    return sorted(work, key=lambda k: (rank[k], -work[k], first_seen[k]))


def pick_scope(queue: Sequence[str], spec_of: Mapping[str, str | None], mine: Sequence[str],
               started: Iterable[str]) -> str:
    """The scope a worker takes next from `queue` (in hand-out order): the first of a spec in `mine` (the specs
    it works on), else the first of a spec no worker has `started` (or of no spec), else the queue's first.
    A worker that keeps to its specs reads and hashes only their inputs; at the end it helps with another's."""
    taken = set(started)
    for scope in queue:
        if spec_of.get(scope) in mine:
            return scope
    for scope in queue:
        spec = spec_of.get(scope)
        if spec is None or spec not in taken:
            return scope
    return queue[0]


def load_item_names(config: Any) -> ItemNames:
    """The check kinds, device profiles (the project's included) and backends this session knows. A profile
    folder that does not load leaves the built-in profiles: an item of an unknown target is then its own scope."""
    from edgecheck.backends import known_backends
    from edgecheck.devices import load_profiles
    from edgecheck.spec.kinds import check_names

    try:
        profiles = load_profiles([Path(p) for p in config.getini("edge_devices_dir")])
    except Exception:  # noqa: BLE001  the workers report it, as a usage error; here it only costs grouping
        profiles = load_profiles([])
    backends = sorted({b for p in profiles.values() for b in p.backends} | set(known_backends()))
    return ItemNames(tuple(check_names()), tuple((t, b) for t in profiles for b in backends))


def user_chose_distribution(config: Any) -> bool:
    """Whether the command line (or addopts, or $PYTEST_ADDOPTS) picked --dist: `-n` alone makes it `load` in
    xdist's pytest_cmdline_main, so the options as first parsed, before that, say what the user asked for."""
    early = getattr(config, "known_args_namespace", None)
    return early is None or getattr(early, "dist", "no") != "no" or bool(getattr(early, "distload", False))


class ArtifactScopeScheduling(LoadScopeScheduling):
    """xdist's LoadScopeScheduling with one scope per artifact (`item_scope`), handed out in `scope_order`, each
    worker keeping to its specs (`pick_scope`)."""

    def __init__(self, config: pytest.Config, log: Any, names: ItemNames):
        super().__init__(config, log)
        self.names = names
        self._ordered = False
        self._scopes: dict[str, str] = {}  # asked again for every finished item
        self._spec_of: dict[str, str | None] = {}  # scope -> its spec
        self.specs_of_node: dict[WorkerController, list[str]] = {}  # the specs each worker has taken work of

    def _split_scope(self, nodeid: str) -> str:
        if nodeid not in self._scopes:
            scope = item_scope(nodeid, self.names)
            self._scopes[nodeid] = scope.key
            self._spec_of[scope.key] = scope.spec
        return self._scopes[nodeid]

    def _assign_work_unit(self, node: WorkerController) -> None:
        if not self._ordered:  # the first hand-out: xdist has built its queue of scopes, in collection order
            self._ordered = True
            for scope in scope_order(self.collection or [], self.names):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope)
        mine = self.specs_of_node.setdefault(node, [])
        started = {spec for specs in self.specs_of_node.values() for spec in specs}
        scope = pick_scope(list(self.workqueue), self._spec_of, mine, started)
        spec = self._spec_of.get(scope)
        if spec is not None and spec not in mine:
            mine.append(spec)
        self.workqueue.move_to_end(scope, last=False)  # xdist's hand-out takes the queue's first
        super()._assign_work_unit(node)

    def remove_node(self, node: WorkerController) -> str | None:
        """A crashed node's running item is returned (xdist reports it as crashed) and counted done; the rest of its
        work goes back to the queue, a scope at a time, for the other nodes. xdist's LoadScopeScheduling requeues the
        crashed item too: each replacement worker ran it again and crashed, and the scope's other items never ran."""
        workload = self.assigned_work.pop(node)
        self.specs_of_node.pop(node, None)  # its specs' remaining scopes are anyone's
        pending = [(scope, nodeid) for scope, unit in workload.items() for nodeid, done in unit.items() if not done]
        if not pending:
            return None
        crashed_scope, crashitem = pending[0]  # a worker runs its items in the order they were sent
        workload[crashed_scope][crashitem] = True
        self.workqueue.update((scope, unit) for scope, unit in workload.items() if not all(unit.values()))
        for other in self.assigned_work:
            self._reschedule(other)
        return crashitem


class ArtifactScheduling:
    """A Scheduling (xdist.scheduler.protocol) that decides once every worker has collected: a run with spec items
    goes by artifact (ArtifactScopeScheduling), any other keeps xdist's `load`, as if edgecheck were not there."""

    def __init__(self, config: pytest.Config, log: Any):
        self.config = config
        self.log = log
        self._names: ItemNames | None = None
        self._nodes: list[WorkerController] = []
        self._collections: dict[WorkerController, list[str]] = {}
        # until every worker has collected, xdist's `load` scheduler (it holds no work before `schedule`)
        self.chosen: Any = LoadScheduling(config, log)
        self._decided = False

    @property
    def nodes(self) -> list[WorkerController]:
        return self.chosen.nodes

    @property
    def collection_is_completed(self) -> bool:
        return self.chosen.collection_is_completed

    @property
    def tests_finished(self) -> bool:
        return self.chosen.tests_finished

    @property
    def has_pending(self) -> bool:
        return self.chosen.has_pending

    def add_node(self, node: WorkerController) -> None:
        self._nodes.append(node)
        self.chosen.add_node(node)

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        if self._names is None and any(could_be_spec_item(n) for n in collection):
            self._names = load_item_names(self.config)  # while the other workers still collect
        self._collections[node] = list(collection)
        self.chosen.add_node_collection(node, collection)
        if self.chosen.collection_is_completed and not self._decided:
            self._decided = True
            self._choose()

    def _choose(self) -> None:
        """Go by artifact where an item is a spec's: give the new scheduler the nodes and collections seen so far."""
        names = self._names
        if names is None or not any(item_scope(n, names).spec for c in self._collections.values() for n in c):
            return
        chosen = ArtifactScopeScheduling(self.config, self.log, names)
        for node in self._nodes:
            if node in self.chosen.nodes:  # (not one that went down while the others collected)
                chosen.add_node(node)
        for node, collection in self._collections.items():
            if node in chosen.nodes:
                chosen.add_node_collection(node, collection)
        self.chosen = chosen

    def mark_test_complete(self, node: WorkerController, item_index: int, duration: float = 0) -> None:
        self.chosen.mark_test_complete(node, item_index, duration)

    def mark_test_pending(self, item: str) -> None:
        self.chosen.mark_test_pending(item)

    def remove_pending_tests_from_node(self, node: WorkerController, indices: Sequence[int]) -> None:
        self.chosen.remove_pending_tests_from_node(node, indices)

    def remove_node(self, node: WorkerController) -> str | None:
        return self.chosen.remove_node(node)

    def schedule(self) -> None:
        self.chosen.schedule()


def make_scheduler(config: Any, log: Any) -> Any:
    """edgecheck's scheduler for a distributed run where the user picked no --dist, else None (xdist's own)."""
    if config.getvalue("dist") != "load" or user_chose_distribution(config):
        return None
    return ArtifactScheduling(config, log)


def scopes_of(nodeids: Iterable[str], names: ItemNames) -> dict[str, list[str]]:
    """Node ids by scope (for tests and the benchmark: how a run would be split)."""
    found: dict[str, list[str]] = {}
    for nodeid in nodeids:
        found.setdefault(item_scope(nodeid, names).key, []).append(nodeid)
    return found
