# e. ListOffsets (earliest/latest/max_timestamp, both isolation levels), OffsetsForTimes, LSO vs HWM.
from common import *
from confluent_kafka.admin import OffsetSpec
from confluent_kafka import IsolationLevel

def admin_offsets(t, label):
    tp = TopicPartition(t, 0)
    out = []
    for iso in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED):
        for name, spec in (("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest())):
            a = AdminClient({"bootstrap.servers": BOOT})   # fresh client each time
            try:
                r = a.list_offsets({tp: spec}, isolation_level=iso, request_timeout=5)
                out.append(f"{iso.name}/{name}={r[tp].result(10).offset}")
            except Exception as e:
                out.append(f"{iso.name}/{name}=ERROR {kerr(e)}")
    log(f"{label}: admin.list_offsets", ", ".join(out))
    log(f"{label}: consumer.get_watermark_offsets (what rdkafka fetch_watermarks does)", watermarks(t))

def true_end(t):
    recs = read_all(t, "read_uncommitted", 2.5)
    return (recs[-1][0] + 1) if recs else 0

t = new_topic("lo")
p = Producer({"bootstrap.servers": BOOT, "linger.ms": 0})
marks = []
for i in range(3):
    marks.append(int(time.time() * 1000)); time.sleep(0.05)
    p.produce(t, key=f"k{i}", value=f"single-{i}", timestamp=1_000_000 + i)  # CreateTime far in the past
    p.flush(10); time.sleep(0.05)
admin_offsets(t, "3 one-record batches (true end 3)")
for i in range(4):
    p.produce(t, key=f"b{i}", value=f"batch-{i}")
p.flush(10)
log("true end offset (last record read + 1):", true_end(t))
admin_offsets(t, "+ one batch of 4 records (true end 7)")

# OffsetsForTimes: by record timestamps (CreateTime 1_000_000+i) or by append time?
c = Consumer({"bootstrap.servers": BOOT, "group.id": "oft-" + uuid.uuid4().hex[:6]})
for label, ts in (("CreateTime of rec 1 (1_000_001)", 1_000_001), ("wall clock before rec 1 appended", marks[1]),
                  ("wall clock before rec 2 appended", marks[2]), ("now + 1 h", int(time.time()*1000) + 3_600_000)):
    r = c.offsets_for_times([TopicPartition(t, 0, ts)], timeout=5)
    log(f"offsets_for_times({label}) ->", r[0].offset, r[0].error)
c.close()
recs = []
c = Consumer({"bootstrap.servers": BOOT, "group.id": "ts-" + uuid.uuid4().hex[:6]})
c.assign([TopicPartition(t, 0, 0)])
end = time.time() + 2.5
while time.time() < end:
    m = c.poll(0.2)
    if m and not m.error(): recs.append((m.offset(), m.timestamp()))
c.close()
log("record timestamps as delivered (type 1=CreateTime, 2=LogAppendTime):", recs)

# max_timestamp spec
a = AdminClient({"bootstrap.servers": BOOT})
try:
    r = a.list_offsets({TopicPartition(t, 0): OffsetSpec.max_timestamp()}, request_timeout=5)
    res = r[TopicPartition(t, 0)].result(10); log("admin.list_offsets max_timestamp -> offset", res.offset, "timestamp", res.timestamp)
except Exception as e:
    log("admin.list_offsets max_timestamp -> ERROR", kerr(e))

# LSO vs HWM with an open transaction
T = "txn-" + uuid.uuid4().hex[:6]
tp_ = txn_producer(T); tp_.init_transactions(10); tp_.begin_transaction()
tp_.produce(t, key="open", value="open-0"); tp_.flush(10)
p.produce(t, key="P", value="plain-after-open"); p.flush(10)
admin_offsets(t, "open txn at offset 7, plain record at 8 (true LSO 7, HWM 9)")
cc = Consumer({"bootstrap.servers": BOOT, "group.id": "lso-" + uuid.uuid4().hex[:6], "isolation.level": "read_committed"})
cc.assign([TopicPartition(t, 0, 0)]); got = []
end = time.time() + 2.5
while time.time() < end:
    m = cc.poll(0.2)
    if m and not m.error(): got.append(m.offset())
log("read_committed consumer got offsets", got, "; cached watermarks from its Fetch responses:",
    cc.get_watermark_offsets(TopicPartition(t, 0), cached=True))
cc.close()
