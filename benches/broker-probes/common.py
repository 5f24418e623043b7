import os, time, uuid, sys
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaException, KafkaError, OFFSET_BEGINNING, OFFSET_END, IsolationLevel
from confluent_kafka.admin import AdminClient, NewTopic

BOOT = os.environ.get("PROBE_KAFKA", "127.0.0.1:19092")

def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)

def new_topic(prefix):
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    a = AdminClient({"bootstrap.servers": BOOT})
    fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    for t, f in fs.items():
        f.result(10)
    time.sleep(0.5)
    log("created topic", name)
    return name

def txn_producer(tid, **extra):
    conf = {"bootstrap.servers": BOOT, "transactional.id": tid, "enable.idempotence": True,
            "linger.ms": 0, "message.timeout.ms": 10000, "transaction.timeout.ms": 60000}
    conf["error_cb"] = lambda err: ERRORS.append((tid, err.name(), err.fatal(), err.str()))
    conf.update(extra)
    return Producer(conf)

ERRORS = []  # (transactional.id, name, fatal, str) reported through error_cb

def kerr(e):
    """describe a KafkaException/KafkaError"""
    if type(e) is KafkaException:
        e = e.args[0]
    if type(e) is KafkaError:
        return (f"{e.name()} (code {e.code()}) fatal={e.fatal()} retriable={e.retriable()} "
                f"txn_requires_abort={e.txn_requires_abort()} str={e.str()!r}")
    return repr(e)

def read_all(topic, isolation, timeout=5.0, partition=0):
    """Read partition from beginning with given isolation, return list of (offset, key, value)."""
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "probe-" + uuid.uuid4().hex[:8],
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.3)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            out.append(("ERR", kerr(m.error()), None))
            continue
        out.append((m.offset(), (m.key() or b"").decode(), (m.value() or b"").decode()))
    pos = c.position([TopicPartition(topic, partition)])
    c.close()
    return out

def watermarks(topic, partition=0):
    """high watermark via two consumers: read_uncommitted (HWM) and read_committed (LSO)."""
    res = {}
    for iso in ("read_uncommitted", "read_committed"):
        c = Consumer({"bootstrap.servers": BOOT, "group.id": "wm-" + uuid.uuid4().hex[:8],
                      "isolation.level": iso})
        try:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=5, cached=False)
            res[iso] = (lo, hi)
        except KafkaException as e:
            res[iso] = kerr(e)
        c.close()
    return res

def show(label, recs):
    log(f"{label}: {len(recs)} records")
    for r in recs:
        print("     ", r, flush=True)
