"""confluent-kafka driver for tests/all/kafka: `python3 -c <this> OP`, a JSON document on
stdin, one JSON document on stdout. Keys, values and header values are lower-case hex (null
for none). Errors are reported in the JSON, not raised, so the Rust test can assert on them.
"""
import json
import sys

from confluent_kafka import (
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
    ConsumerGroupTopicPartitions,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)


# Errors the client reported outside any request (authentication, transport), by name.
CLIENT_ERRORS = []


def with_error_cb(conf):
    conf = dict(conf)
    conf["error_cb"] = lambda e: CLIENT_ERRORS.append(err(e))
    return conf


def unhex(v):
    return None if v is None else bytes.fromhex(v)


def tohex(v):
    return None if v is None else v.hex()


def err(e):
    if e is None:
        return None
    if isinstance(e, KafkaException):
        e = e.args[0]
    name = e.name() if hasattr(e, "name") else type(e).__name__
    text = e.str() if hasattr(e, "str") else str(e)
    return {"name": name, "text": text}


def produce(req):
    p = Producer(with_error_cb(req["conf"]))
    deliveries = []

    def report(e, msg):
        ts = msg.timestamp()
        deliveries.append(
            {
                "error": err(e),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": ts[1],
                "key": tohex(msg.key()),
            }
        )

    for r in req["records"]:
        kw = {"key": unhex(r.get("key")), "value": unhex(r.get("value")), "on_delivery": report}
        if "partition" in r:
            kw["partition"] = r["partition"]
        if "timestamp" in r:
            kw["timestamp"] = r["timestamp"]
        if r.get("headers"):
            kw["headers"] = [(k, unhex(v)) for k, v in r["headers"]]
        p.produce(req["topic"], **kw)
    left = p.flush(req.get("timeout", 30))
    return {"deliveries": deliveries, "unflushed": left}


def message(m):
    ts = m.timestamp()
    return {
        "error": err(m.error()),
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "key": tohex(m.key()),
        "value": tohex(m.value()),
        "headers": [[k, tohex(v)] for k, v in (m.headers() or [])],
        "timestamp_type": ts[0],
        "timestamp": ts[1],
    }


SPECIAL = {"earliest": -2, "latest": -1}


def consume(req):
    """Assigns `assign` ([{topic, partition, offset | "earliest" | "latest", time}]), reads up
    to `max` records (at most `timeout` seconds), then runs `commit` and `committed`."""
    conf = dict({"group.id": "distlog-tests", "enable.auto.commit": False}, **req["conf"])
    c = Consumer(with_error_cb(conf))
    out = {}
    try:
        parts = []
        for a in req.get("assign", []):
            if "time" in a:
                found = c.offsets_for_times([TopicPartition(a["topic"], a["partition"], a["time"])], timeout=20)
                out.setdefault("offsets_for_times", []).append([t.offset for t in found][0])
                parts.append(TopicPartition(a["topic"], a["partition"], found[0].offset))
            else:
                off = SPECIAL.get(a["offset"], a["offset"])
                parts.append(TopicPartition(a["topic"], a["partition"], off))
        if parts:
            c.assign(parts)
        msgs = []
        want = req.get("max", 0)
        import time

        deadline = time.monotonic() + req.get("timeout", 10)
        while len(msgs) < want and time.monotonic() < deadline:
            batch = c.consume(want - len(msgs), timeout=max(0.05, deadline - time.monotonic()))
            msgs.extend(message(m) for m in batch)
        out["messages"] = msgs
        for w in req.get("watermarks", []):
            try:
                lo, hi = c.get_watermark_offsets(TopicPartition(w["topic"], w["partition"]), timeout=20)
                out.setdefault("watermarks", []).append([lo, hi])
            except KafkaException as e:
                out.setdefault("watermarks", []).append(err(e))
        if "commit" in req:
            try:
                tps = [TopicPartition(t, p, o) for t, p, o in req["commit"]]
                done = c.commit(offsets=tps, asynchronous=False)
                out["commit"] = [[t.topic, t.partition, t.offset, err(t.error)] for t in done]
            except KafkaException as e:
                out["commit"] = err(e)
        if "committed" in req:
            try:
                got = c.committed([TopicPartition(t, p) for t, p in req["committed"]], timeout=20)
                out["committed"] = [[t.topic, t.partition, t.offset, err(t.error)] for t in got]
            except KafkaException as e:
                out["committed"] = err(e)
    finally:
        c.close()
    return out


def resource(r):
    return ConfigResource(ResourceType[r.get("type", "TOPIC")], r["name"])


def config_entries(res):
    return {k: v.value for k, v in res.items()}


def admin_step(a, s, t):
    """Runs one admin step; returns a JSON-able value or raises."""
    op = s["op"]
    if op == "create_topics":
        fs = a.create_topics(
            [NewTopic(x["name"], x.get("partitions", 1), x.get("replication", 1), config=x.get("config", {})) for x in s["topics"]],
            request_timeout=t,
            validate_only=s.get("validate_only", False),
        )
        return {k: err_or(f) for k, f in fs.items()}
    if op == "create_partitions":
        fs = a.create_partitions([NewPartitions(x["name"], x["total"]) for x in s["topics"]], request_timeout=t)
        return {k: err_or(f) for k, f in fs.items()}
    if op == "delete_topics":
        fs = a.delete_topics(s["topics"], request_timeout=t)
        return {k: err_or(f) for k, f in fs.items()}
    if op == "describe_configs":
        fs = a.describe_configs([resource(r) for r in s["resources"]], request_timeout=t)
        return {r.name: config_entries(f.result()) for r, f in fs.items()}
    if op == "alter_configs":
        res = [ConfigResource(ResourceType.TOPIC, r["name"], set_config=r["config"]) for r in s["resources"]]
        fs = a.alter_configs(res, request_timeout=t)
        return {r.name: err_or(f) for r, f in fs.items()}
    if op == "incremental_alter_configs":
        res = []
        for r in s["resources"]:
            entries = [
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType[o])
                for k, o, v in r["ops"]
            ]
            res.append(ConfigResource(ResourceType.TOPIC, r["name"], incremental_configs=entries))
        fs = a.incremental_alter_configs(res)
        return {r.name: err_or(f) for r, f in fs.items()}
    if op == "list_consumer_groups":
        got = a.list_consumer_groups(request_timeout=t).result()
        return {
            "valid": sorted(g.group_id for g in got.valid),
            "errors": [str(e) for e in got.errors],
        }
    if op == "describe_consumer_groups":
        fs = a.describe_consumer_groups(s["groups"], request_timeout=t)
        out = {}
        for g, f in fs.items():
            d = f.result()
            out[g] = {"state": str(d.state), "members": len(d.members), "coordinator": d.coordinator.id}
        return out
    if op == "delete_consumer_groups":
        fs = a.delete_consumer_groups(s["groups"], request_timeout=t)
        return {k: err_or(f) for k, f in fs.items()}
    if op == "list_consumer_group_offsets":
        fs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(s["group"])], request_timeout=t)
        out = {}
        for g, f in fs.items():
            out[g] = [[p.topic, p.partition, p.offset] for p in f.result().topic_partitions]
        return out
    if op == "describe_cluster":
        d = a.describe_cluster(request_timeout=t).result()
        return {
            "cluster_id": d.cluster_id,
            "controller": d.controller.id if d.controller else None,
            "nodes": [[n.id, n.host, n.port] for n in d.nodes],
        }
    if op == "list_offsets":
        specs = {
            "earliest": OffsetSpec.earliest(),
            "latest": OffsetSpec.latest(),
        }
        out = []
        # One call per entry: a request maps each partition to one spec.
        for x in s["partitions"]:
            spec = specs[x["spec"]] if x["spec"] in specs else OffsetSpec.for_timestamp(x["spec"])
            fs = a.list_offsets({TopicPartition(x["topic"], x["partition"]): spec}, request_timeout=t)
            out.extend([tp.topic, tp.partition, f.result().offset] for tp, f in fs.items())
        return out
    if op == "list_topics":
        md = a.list_topics(timeout=t)
        return {name: len(tm.partitions) for name, tm in md.topics.items()}
    raise ValueError("unknown admin step " + op)


def err_or(f):
    try:
        f.result()
        return None
    except KafkaException as e:
        return err(e)


def admin(req):
    """Runs `steps` in order, each result (or error) reported, none stopping the others."""
    a = AdminClient(with_error_cb(req["conf"]))
    t = req.get("timeout", 15)
    results = []
    for s in req["steps"]:
        try:
            results.append({"op": s["op"], "ok": admin_step(a, s, t)})
        except KafkaException as e:
            results.append({"op": s["op"], "error": err(e)})
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            results.append({"op": s["op"], "error": {"name": type(e).__name__, "text": str(e)}})
    return {"results": results}


OPS = {"produce": produce, "consume": consume, "admin": admin}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    result = OPS[sys.argv[1]](request)
    result["client_errors"] = CLIENT_ERRORS
    json.dump(result, sys.stdout)
