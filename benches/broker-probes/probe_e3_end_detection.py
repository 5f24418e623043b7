# e3. Finding the end of the partition without ListOffsets: does PARTITION_EOF (enable.partition.eof)
# and the cached watermark from Fetch responses give the real end on tansu? (multi-record batches,
# and with an open transaction for read_committed)
from common import *
log("librdkafka", __import__("confluent_kafka").libversion())
def eof_read(t, iso, secs=6):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "eof-" + uuid.uuid4().hex[:6], "isolation.level": iso,
                  "enable.partition.eof": True, "enable.auto.commit": False})
    c.assign([TopicPartition(t, 0, 0)]); last = None; eof_at = None; t0 = time.time()
    while time.time() - t0 < secs:
        m = c.poll(0.2)
        if m is None: continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof_at = m.offset(); break
            continue
        last = m.offset()
    cached = c.get_watermark_offsets(TopicPartition(t, 0), cached=True)
    listed = c.get_watermark_offsets(TopicPartition(t, 0), timeout=5, cached=False)
    c.close()
    return f"last record {last}, PARTITION_EOF at {eof_at} after {time.time()-t0:.1f}s, cached (Fetch) watermarks {cached}, ListOffsets {listed}"
t = new_topic("eof")
p = Producer({"bootstrap.servers": BOOT, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
for n in (1, 3, 5):
    for i in range(n): p.produce(t, partition=0, key="o", value=f"{n}-{i}")
    p.flush(10)
log("9 records in groups of 1, 3, 5 (real end 9)")
log("  read_uncommitted:", eof_read(t, "read_uncommitted"))
log("  read_committed:  ", eof_read(t, "read_committed"))
T = "txn-" + uuid.uuid4().hex[:6]
tp_ = txn_producer(T); tp_.init_transactions(10); tp_.begin_transaction()
tp_.produce(t, key="open", value="open"); tp_.flush(10)
p.produce(t, partition=0, key="o", value="after-open"); p.flush(10)
log("+ open transaction record at 9, plain record at 10 (real end 11, LSO 9)")
log("  read_uncommitted:", eof_read(t, "read_uncommitted"))
log("  read_committed:  ", eof_read(t, "read_committed"))
