#!/usr/bin/env python3
"""A consuming service for webhook-bridge's records, in Python: confluent-kafka
reads them, the CloudEvents SDK's Kafka binding decodes them.

    pip install -r requirements.txt
    python3 consumer.py --brokers localhost:9092 --group billing-service

What every service reading the bridge's topics gets right, here in one file:
  - its own consumer group (group.id = the service's name);
  - a subscription by pattern (^webhooks\\..*), so topics made later for new
    event types are picked up at the next metadata refresh;
  - deduplication on the CloudEvents source + id (delivery is at-least-once),
    in a bounded in-memory store: a real service keeps the ids it applied in
    its database, under a unique key, in the transaction of the effect;
  - the offset of a record stored only once it was handled, and committed
    from there (a crash replays records, never skips them);
  - dead letters (type <provider>.deadletter) told apart from events;
  - SIGTERM: finish the record in hand, commit, leave the group, exit 0.

It prints one JSON line per record on stdout ("kind": event, duplicate,
deadletter or invalid, then where it was and what it holds); diagnostics go to
stderr. Replace handle_event() and handle_deadletter() with your own logic.
"""
import argparse
import json
import os
import re
import signal
import sys
from collections import OrderedDict

from cloudevents.core.bindings import kafka as ce_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException

DEADLETTER = re.compile(r"^[a-z0-9]+\.deadletter$")


class SeenEvents:
    """The last `capacity` (source, id) pairs, least recently seen dropped first."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._keys = OrderedDict()

    def seen_before(self, source, ident):
        """Records the pair; True if it was already there."""
        if self.capacity == 0:
            return False
        key = (source, ident)
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return False


def describe(msg, event):
    """Where the record was and what the CloudEvent holds, as a dict for printing."""
    ext = event.get_attributes()
    time = event.get_time()
    return {
        "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
        "key": msg.key().decode("utf-8") if msg.key() is not None else None,
        "id": event.get_id(), "source": event.get_source(), "type": event.get_type(),
        "subject": event.get_subject(),
        "time": time.isoformat() if time is not None else None,
        "provider": ext.get("provider"), "providerevent": ext.get("providerevent"),
        "receivedat": ext.get("receivedat"), "deadletterreason": ext.get("deadletterreason"),
        "data": event.get_data(),
    }


def emit(kind, fields):
    print(json.dumps({"kind": kind, **fields}, ensure_ascii=False), flush=True)


def handle_event(msg, event):
    emit("event", describe(msg, event))


def handle_deadletter(msg, event):
    # A body the bridge could not read as its provider's event: alert, park it,
    # or fix the provider description and run `webhook-bridge replay`.
    emit("deadletter", describe(msg, event))


def process(msg, seen):
    headers = {k: v or b"" for k, v in (msg.headers() or [])}
    try:
        event = ce_kafka.from_kafka_event(
            ce_kafka.KafkaMessage(headers=headers, key=msg.key(), value=msg.value() or b""))
    except Exception as e:  # not a CloudEvent: report it and go on, never block the partition
        emit("invalid", {"topic": msg.topic(), "partition": msg.partition(),
                         "offset": msg.offset(), "reason": f"{type(e).__name__}: {e}"})
        return
    if seen.seen_before(event.get_source(), event.get_id()):
        emit("duplicate", {"topic": msg.topic(), "partition": msg.partition(),
                           "offset": msg.offset(), "id": event.get_id(),
                           "source": event.get_source(), "type": event.get_type()})
    elif DEADLETTER.match(event.get_type()):
        handle_deadletter(msg, event)
    else:
        handle_event(msg, event)


def options(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(description="Reads webhook-bridge's CloudEvents from Kafka.")
    p.add_argument("--brokers", default=env("WEBHOOK_CONSUMER_BROKERS", "localhost:9092"))
    p.add_argument("--group", default=env("WEBHOOK_CONSUMER_GROUP", "webhook-consumer-python"))
    p.add_argument("--topics", default=env("WEBHOOK_CONSUMER_TOPICS", r"^webhooks\..*"),
                   help="comma-separated topics; one starting with ^ is a regular expression")
    p.add_argument("--dedup-size", type=int, default=env("WEBHOOK_CONSUMER_DEDUP_SIZE", "10000"),
                   help="how many (source, id) pairs to remember; 0 turns deduplication off")
    p.add_argument("-X", dest="props", action="append", default=[], metavar="NAME=VALUE",
                   help="any librdkafka consumer property")
    o = p.parse_args(argv)
    if o.dedup_size < 0:
        p.error("--dedup-size: must be >= 0")
    for prop in o.props:
        if "=" not in prop:
            p.error(f"-X {prop}: expected NAME=VALUE")
    return o


def main(argv):
    o = options(argv)
    conf = {
        "bootstrap.servers": o.brokers,
        "group.id": o.group,
        "auto.offset.reset": "earliest",  # a new service starts at the oldest event
        # the offset of a record is stored by process()'s caller once it is
        # handled; the auto-commit then commits only stored offsets
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "topic.metadata.refresh.interval.ms": 60000,  # new topics within a minute
    }
    conf.update(prop.split("=", 1) for prop in o.props)
    consumer = Consumer(conf)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    topics = o.topics.split(",")
    consumer.subscribe(topics, on_assign=lambda c, parts: print(
        f"consumer: group {o.group}: assigned {len(parts)} partition(s)", file=sys.stderr,
        flush=True))
    print(f"consumer: group {o.group}, topics {','.join(topics)}, brokers {o.brokers}",
          file=sys.stderr, flush=True)
    seen = SeenEvents(o.dedup_size)
    handled = 0
    try:
        while not stopping:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer: {msg.error()}", file=sys.stderr, flush=True)
                continue
            process(msg, seen)
            consumer.store_offsets(message=msg)  # handled: commit from here on
            handled += 1
    except KafkaException as e:
        print(f"consumer: {e}", file=sys.stderr)
        return 1
    finally:
        consumer.close()  # commits the stored offsets and leaves the group
    print(f"consumer: left group {o.group} after {handled} record(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
