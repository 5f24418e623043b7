# c. An open transaction whose producer is SIGKILLed: what do read_committed readers see, and does
# the broker abort it after transaction.timeout.ms?
import subprocess, signal, sys
from common import *

if len(sys.argv) > 1 and sys.argv[1] == "child":
    topic, tid = sys.argv[2], sys.argv[3]
    p = txn_producer(tid, **{"transaction.timeout.ms": 5000, "message.timeout.ms": 4000})
    p.init_transactions(10); p.begin_transaction()
    for i in range(3):
        p.produce(topic, key="K", value=f"open-{i}")
    p.flush(10)
    print("CHILD produced 3 records in an open transaction", flush=True)
    time.sleep(3600)

t = new_topic("open")
plain = Producer({"bootstrap.servers": BOOT, "linger.ms": 0})
plain.produce(t, key="P", value="plain-before"); plain.flush(10)
T = "txn-" + uuid.uuid4().hex[:6]
child = subprocess.Popen([sys.executable, __file__, "child", t, T], stdout=subprocess.PIPE, text=True)
log(child.stdout.readline().strip())
plain.produce(t, key="P", value="plain-after-open-txn"); plain.flush(10)
show("read_uncommitted, producer alive", read_all(t, "read_uncommitted", 3))
show("read_committed, producer alive", read_all(t, "read_committed", 3))
log("ListOffsets", watermarks(t))
os.kill(child.pid, signal.SIGKILL); child.wait()
log("child SIGKILLed; transaction.timeout.ms was 5000; waiting 20 s")
time.sleep(20)
show("read_committed 20 s after SIGKILL", read_all(t, "read_committed", 3))
log("ListOffsets", watermarks(t))

# A read_committed consumer already tailing sees nothing more until... the same id is re-inited
c = Consumer({"bootstrap.servers": BOOT, "group.id": "tail-" + uuid.uuid4().hex[:6], "isolation.level": "read_committed"})
c.assign([TopicPartition(t, 0, 0)])
got = []
end = time.time() + 3
while time.time() < end:
    m = c.poll(0.2)
    if m and not m.error(): got.append((m.offset(), m.value().decode()))
log("tailing read_committed consumer got", got, "cached watermarks (fetch response):", c.get_watermark_offsets(TopicPartition(t, 0), cached=True))
R = txn_producer(T); t0 = time.time(); R.init_transactions(10); log(f"re-init of the same transactional.id ok ({time.time()-t0:.2f}s)")
end = time.time() + 4
while time.time() < end:
    m = c.poll(0.2)
    if m and not m.error(): got.append((m.offset(), m.value().decode()))
log("tailing read_committed consumer after re-init got", got, "cached watermarks:", c.get_watermark_offsets(TopicPartition(t, 0), cached=True))
c.close()
log("ListOffsets", watermarks(t))
