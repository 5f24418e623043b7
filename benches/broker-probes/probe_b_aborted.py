# b. Aborted transactions. librdkafka's abort_transaction cannot reach tansu 0.6.0 (EndTxn is not
# advertised, see probe_apiversions.py / probe_b_endtxn_raw.py), so the only abort tansu performs is
# the one InitProducerId does for a transactional.id whose previous epoch has an open transaction.
# Layout: 2 plain records, a transaction of N records that is then aborted (by re-init), 2 plain records.
from common import *
N = 5
t = new_topic("abort")
plain = Producer({"bootstrap.servers": BOOT, "linger.ms": 0})
plain.produce(t, key="P", value="plain-before-0"); plain.produce(t, key="P", value="plain-before-1"); plain.flush(10)

T = "txn-" + uuid.uuid4().hex[:6]
A = txn_producer(T); A.init_transactions(10); A.begin_transaction()
for i in range(N):
    A.produce(t, key="A", value=f"aborted-{i}")
A.flush(10)
try:
    A.abort_transaction(10); log("A.abort_transaction ok")
except KafkaException as e:
    log("A.abort_transaction FAILED:", kerr(e))
log("while the transaction is open: ListOffsets", watermarks(t))
show("read_committed while open", read_all(t, "read_committed", 3))

# the abort tansu will do: a new producer inits the same transactional.id
A2 = txn_producer(T); A2.init_transactions(10); log("A2.init_transactions ok (aborts epoch 0's transaction)")
plain.produce(t, key="P", value="plain-after-0"); plain.produce(t, key="P", value="plain-after-1"); plain.flush(10)

ru = read_all(t, "read_uncommitted", 3)
rc = read_all(t, "read_committed", 3)
show("read_uncommitted after abort", ru)
show("read_committed after abort", rc)
offs = [r[0] for r in ru]
gaps = [o for o in range(offs[0], offs[-1]) if o not in offs]
log("offsets not delivered to read_uncommitted (control records):", gaps)
log("aborted records delivered to read_committed:", [r for r in rc if r[2].startswith("aborted")])
log("ListOffsets", watermarks(t))
