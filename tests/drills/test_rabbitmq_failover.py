"""Drill: a real 3-node RabbitMQ cluster, booted from the deployed config, loses no confirmed
message.

Scenarios (one cluster for the module, each on its own quorum queue):
1. SIGKILL the queue's leader in the middle of a confirmed-publish stream, keep publishing
   through the survivors, restart the node, check it rejoins, consume everything.
2. Kill two of three nodes: publishing must be refused (no confirm), never silently accepted.
3. A rolling restart the way the StatefulSet does it (preStop drain, stop, start, rejoin).

Every confirmed message must be consumed (0 lost); duplicates (at-least-once retries) are counted
and printed, as is the time from the kill to the next confirmed publish. Run with
`pytest -m drill tests/drills/test_rabbitmq_failover.py -s` to see the numbers.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import amqp
import pytest

from drills.rabbitmq_cluster import (
    DRILL_APP_USER,
    DRILL_VHOST,
    LocalRabbitMQCluster,
    installed_version,
)
from infra.rabbitmq_config import PoisonMessagePolicy

pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def rabbitmq_drill_cluster():
    # A low delivery limit keeps the poison-message check short; everything else is the default.
    # TLS on, as deployed: clients over AMQPS verifying the CA, nodes over mutual TLS.
    cluster = LocalRabbitMQCluster(size=3, poison=PoisonMessagePolicy(delivery_limit=3),
                                   tls=True)
    try:
        with cluster:
            print(f"\n[rabbitmq drill] RabbitMQ {cluster.version} (Debian package), "
                  f"3 nodes, epmd port {cluster.epmd_port}, TLS for clients and between nodes")
            yield cluster
    finally:
        leftovers = cluster.leftover_processes()
        assert leftovers == [], f"processes left behind by the drill: {leftovers}"


# --------------------------------------------------------------------------------- clients


@dataclass
class PublishLog:
    confirmed: dict[int, float] = field(default_factory=dict)
    """sequence number -> monotonic time its confirm arrived."""
    refused: list[tuple[int, float, str]] = field(default_factory=list)
    """(sequence number, time, error) for each publish that got no confirm."""


class ConfirmingPublisher:
    """Publishes persistent messages with publisher confirms; on any failure moves to the next
    node of the failover list (what Celery/kombu do with a `;`-separated broker URL)."""

    def __init__(self, cluster: LocalRabbitMQCluster, queue: str, first_node: str) -> None:
        self.cluster = cluster
        self.queue = queue
        names = [node.name for node in cluster.nodes]
        start = names.index(first_node)
        self.order = names[start:] + names[:start]
        self.index = 0
        self.connection: amqp.Connection | None = None
        self.channel = None
        self.connected_node: str | None = None
        self.log = PublishLog()

    def _connect(self) -> None:
        last_error: Exception | None = None
        for _ in range(len(self.order)):
            name = self.order[self.index % len(self.order)]
            node = self.cluster.node(name)
            connection = amqp.Connection(
                **self.cluster.amqp_endpoint(node.name), userid=DRILL_APP_USER,
                password=self.cluster.app_password, virtual_host=DRILL_VHOST,
                confirm_publish=True, connect_timeout=2,
            )
            try:
                connection.connect()
                self.channel = connection.channel()
                self.connection = connection
                self.connected_node = name
                return
            except Exception as error:  # refused, reset, paused node closing the socket...
                last_error = error
                _close_quietly(connection)
                self.index += 1
        raise ConnectionError(f"no node accepted a connection: {last_error!r}")

    def publish(self, sequence: int, confirm_timeout: float = 5.0) -> bool:
        """True only when the broker confirmed the message."""
        try:
            if self.channel is None:
                self._connect()
            self.channel.basic_publish(
                amqp.Message(str(sequence), delivery_mode=2), exchange="",
                routing_key=self.queue, confirm_timeout=confirm_timeout,
            )
        except Exception as error:
            self.log.refused.append((sequence, time.monotonic(), type(error).__name__))
            self.close()
            self.index += 1
            return False
        self.log.confirmed[sequence] = time.monotonic()
        return True

    def publish_until_confirmed(self, sequence: int, give_up_after: float = 60.0) -> None:
        deadline = time.monotonic() + give_up_after
        while not self.publish(sequence):
            if time.monotonic() > deadline:
                raise AssertionError(f"message {sequence} never confirmed in {give_up_after} s")
            time.sleep(0.05)

    def close(self) -> None:
        if self.connection is not None:
            _close_quietly(self.connection)
        self.connection = self.channel = self.connected_node = None


def _close_quietly(connection: amqp.Connection) -> None:
    # The socket is usually gone already; there is nothing to report.
    with contextlib.suppress(Exception):
        connection.collect()


def _connect(cluster: LocalRabbitMQCluster, node_name: str) -> amqp.Connection:
    connection = amqp.Connection(
        **cluster.amqp_endpoint(node_name), userid=DRILL_APP_USER,
        password=cluster.app_password, virtual_host=DRILL_VHOST, connect_timeout=5,
    )
    connection.connect()
    return connection


def declare_queue(cluster: LocalRabbitMQCluster, via: str) -> str:
    """Declared WITHOUT x-queue-type: the vhost default from the definitions must make it quorum."""
    queue = f"drill-{uuid.uuid4().hex[:10]}"
    connection = _connect(cluster, via)
    try:
        connection.channel().queue_declare(queue, durable=True, auto_delete=False)
    finally:
        connection.close()
    return queue


def consume_all(cluster: LocalRabbitMQCluster, queue: str, timeout: float = 120.0) -> list[int]:
    """Every message in ``queue``, acknowledged, as sequence numbers (duplicates kept)."""
    live = next(node.name for node in cluster.nodes if cluster.is_running(node.name))
    deadline = time.monotonic() + timeout
    received: list[int] = []
    connection = _connect(cluster, live)
    try:
        channel = connection.channel()
        channel.basic_qos(0, 500, False)

        def on_message(message: amqp.Message) -> None:
            received.append(int(message.body))
            channel.basic_ack(message.delivery_tag)

        channel.basic_consume(queue, callback=on_message)
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"consuming {queue} took over {timeout} s")
            try:
                connection.drain_events(timeout=1.0)
            except TimeoutError:
                # A second without deliveries: done once the broker agrees the queue is empty.
                _, remaining, _ = channel.queue_declare(queue, passive=True)
                if remaining == 0:
                    break
    finally:
        connection.close()
    return received


def report(title: str, confirmed: set[int], consumed: list[int]) -> tuple[set[int], int]:
    counts = Counter(consumed)
    lost = confirmed - set(counts)
    duplicates = sum(count - 1 for count in counts.values() if count > 1)
    print(f"[rabbitmq drill] {title}: confirmed {len(confirmed)}, consumed {len(consumed)} "
          f"({len(counts)} distinct), lost {len(lost)}, duplicates {duplicates}")
    return lost, duplicates


# ------------------------------------------------------------------------------ scenarios


def test_drill_runs_the_machine_rabbitmq_version_it_reports(rabbitmq_drill_cluster):
    cluster = rabbitmq_drill_cluster
    assert cluster.version == installed_version()
    # The generated definitions replaced guest: only the admin and the application user exist.
    assert "guest" not in cluster.users()
    # The definitions were imported completely (3.10 silently stops at the first bad policy).
    assert cluster.queue_type(cluster.poison.dead_letter_queue) == "quorum"


def test_a_message_redelivered_past_the_limit_is_dead_lettered(rabbitmq_drill_cluster):
    cluster = rabbitmq_drill_cluster
    queue = declare_queue(cluster, cluster.nodes[0].name)
    connection = _connect(cluster, cluster.nodes[0].name)
    try:
        channel = connection.channel()
        channel.confirm_select()
        channel.basic_publish(amqp.Message("poison", delivery_mode=2), routing_key=queue)
        rejections = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = channel.basic_get(queue)
            if message is None:
                _, remaining, _ = channel.queue_declare(queue, passive=True)
                if remaining == 0 and rejections:
                    break
                time.sleep(0.1)
                continue
            # What a worker killed mid-task amounts to: the message goes back, again and again.
            channel.basic_reject(message.delivery_tag, requeue=True)
            rejections += 1
        dead = None
        while dead is None and time.monotonic() < deadline:
            dead = channel.basic_get(cluster.poison.dead_letter_queue)
            time.sleep(0.1)
    finally:
        connection.close()
    print(f"[rabbitmq drill] poison message dead-lettered after {rejections} deliveries "
          f"(delivery limit {cluster.poison.delivery_limit})")
    assert dead is not None and dead.body == "poison"
    assert rejections == cluster.poison.delivery_limit + 1


def test_killing_the_queue_leader_loses_no_confirmed_message(rabbitmq_drill_cluster):
    cluster = rabbitmq_drill_cluster
    total, kill_after = 3000, 1000
    queue = declare_queue(cluster, cluster.nodes[0].name)
    assert cluster.queue_type(queue) == "quorum"
    leader = cluster.quorum_leader(queue)
    publisher = ConfirmingPublisher(cluster, queue, first_node=leader)

    killed: dict[str, float] = {}

    def kill_leader_mid_stream() -> None:
        while len(publisher.log.confirmed) < kill_after:
            time.sleep(0.001)
        killed["at"] = cluster.kill(leader)

    killer = threading.Thread(target=kill_leader_mid_stream, daemon=True)
    killer.start()
    try:
        for sequence in range(total):
            publisher.publish_until_confirmed(sequence)
    finally:
        publisher.close()
        killer.join(timeout=30)
    assert "at" in killed, "the leader was never killed"
    assert not cluster.is_running(leader)

    # Confirms already in flight can land just after the kill; the outage ends with the first
    # confirm after the publisher noticed (its first failure), through a surviving node.
    first_failure = min(at for _, at, _ in publisher.log.refused if at >= killed["at"])
    after_failover = [at for at in publisher.log.confirmed.values() if at > first_failure]
    kill_to_confirm = min(after_failover) - killed["at"]
    new_leader = cluster.quorum_leader(queue)
    assert new_leader != leader

    cluster.start(leader)
    rejoin_seconds = cluster.await_rejoined(leader)
    members = {row["Node Name"] for row in cluster.quorum_status(queue)}
    assert leader in members

    consumed = consume_all(cluster, queue)
    lost, _ = report("leader kill", set(publisher.log.confirmed), consumed)
    print(f"[rabbitmq drill] leader {leader} killed after {kill_after} confirms; "
          f"kill -> next confirmed publish {kill_to_confirm * 1000:.0f} ms; "
          f"failed publish attempts {len(publisher.log.refused)}; new leader {new_leader}; "
          f"restarted node rejoined in {rejoin_seconds:.1f} s")
    assert lost == set(), f"confirmed but never consumed: {sorted(lost)[:20]}"
    assert set(consumed) == set(range(total))


def test_publishing_is_refused_not_lost_while_two_of_three_nodes_are_down(
    rabbitmq_drill_cluster,
):
    cluster = rabbitmq_drill_cluster
    survivor = cluster.nodes[0].name
    victims = [node.name for node in cluster.nodes[1:]]
    queue = declare_queue(cluster, survivor)
    publisher = ConfirmingPublisher(cluster, queue, first_node=survivor)
    before = range(0, 200)
    for sequence in before:
        publisher.publish_until_confirmed(sequence)

    for victim in victims:
        cluster.kill(victim)
    outage_attempts = 0
    outage_end = time.monotonic() + 8.0
    sequence = 10_000
    while time.monotonic() < outage_end:
        outage_attempts += 1
        publisher.publish(sequence, confirm_timeout=2.0)
        sequence += 1
        time.sleep(0.05)
    outage_sequences = set(range(10_000, sequence))
    confirmed_in_outage = outage_sequences & set(publisher.log.confirmed)
    refused_in_outage = {s for s, _, _ in publisher.log.refused} & outage_sequences
    publisher.close()

    for victim in victims:
        cluster.start(victim)
    for victim in victims:
        cluster.await_rejoined(victim)
    cluster.await_rejoined(survivor)
    after = range(20_000, 20_200)
    for sequence in after:
        publisher.publish_until_confirmed(sequence)
    publisher.close()

    consumed = consume_all(cluster, queue)
    confirmed = set(publisher.log.confirmed)
    lost, _ = report("two of three down", confirmed, consumed)
    accepted_late = refused_in_outage & set(consumed)
    print(f"[rabbitmq drill] 2 of 3 nodes down for 8 s: {outage_attempts} publish attempts, "
          f"{len(confirmed_in_outage)} confirmed, {len(refused_in_outage)} refused "
          f"({len(accepted_late)} of the refused were delivered later: unconfirmed, not lost)")
    assert outage_attempts > 0
    assert confirmed_in_outage == set(), "a publish was confirmed without a majority"
    assert refused_in_outage == outage_sequences
    assert lost == set()
    assert set(before) | set(after) <= set(consumed)


def test_a_rolling_restart_loses_no_confirmed_message(rabbitmq_drill_cluster):
    cluster = rabbitmq_drill_cluster
    queue = declare_queue(cluster, cluster.nodes[0].name)
    publisher = ConfirmingPublisher(cluster, queue, first_node=cluster.nodes[-1].name)
    stop = threading.Event()
    published = {"next": 0}

    def publish_continuously() -> None:
        while not stop.is_set():
            if publisher.publish(published["next"]):
                published["next"] += 1
                time.sleep(0.005)
            else:
                time.sleep(0.05)

    thread = threading.Thread(target=publish_continuously, daemon=True)
    thread.start()
    try:
        durations = cluster.rolling_restart()
    finally:
        stop.set()
        thread.join(timeout=30)
        publisher.close()

    confirm_times = sorted(publisher.log.confirmed.values())
    longest_gap = max(b - a for a, b in itertools.pairwise(confirm_times))
    consumed = consume_all(cluster, queue)
    lost, _ = report("rolling restart", set(publisher.log.confirmed), consumed)
    print(f"[rabbitmq drill] rolling restart: per node {', '.join(f'{d:.1f}' for d in durations)}"
          f" s; longest gap between confirms {longest_gap * 1000:.0f} ms; "
          f"failed attempts {len(publisher.log.refused)}")
    assert len(durations) == cluster.size
    assert len(publisher.log.confirmed) > 0
    assert lost == set()
