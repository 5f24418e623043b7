# e2. govledger's WAL pattern (src/replication.rs: idempotent, acks=all, linger.ms=0, several records
# sent before awaiting their reports) and its reader (fetch_watermarks -> read up to `high`):
# does the ListOffsets 'latest' tansu returns equal the real end of the partition?
from common import *
log("librdkafka", __import__("confluent_kafka").libversion())
t = new_topic("walpattern")
p = Producer({"bootstrap.servers": BOOT, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
for group in range(6):
    n = group + 1
    for i in range(n):
        p.produce(t, partition=0, key="origin", value=f"g{group}-r{i}")
    p.flush(10)
    recs = read_all(t, "read_uncommitted", 1.5)
    real_end = recs[-1][0] + 1
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "wm-" + uuid.uuid4().hex[:6]})  # default isolation (read_committed)
    lo, hi = c.get_watermark_offsets(TopicPartition(t, 0), timeout=5, cached=False)
    c.close()
    log(f"after a group of {n} record(s): real end {real_end}, fetch_watermarks high {hi}"
        + ("" if hi == real_end else f"  <-- a reader stopping at {hi} misses {real_end - hi} record(s)"))
