# a. transactional.id fencing: A inits/begins/produces, B inits with the same transactional.id.
from common import *

t = new_topic("fence")
T = "txn-" + uuid.uuid4().hex[:6]
dr = []
def cb(tag):
    def f(err, msg):
        dr.append((tag, None if err is None else kerr(err), msg.offset() if err is None else None))
    return f

A = txn_producer(T)
t0 = time.time(); A.init_transactions(10); log(f"A.init_transactions ok ({time.time()-t0:.2f}s)")

# --- step 1: try a complete transaction (begin, produce, commit)
A.begin_transaction()
A.produce(t, key="A", value="A-txn1-rec0", on_delivery=cb("A-txn1-rec0"))
A.flush(10)
try:
    A.commit_transaction(10); log("A.commit_transaction ok")
except KafkaException as e:
    log("A.commit_transaction FAILED:", kerr(e))
log("delivery reports:", dr)
show("read_uncommitted after A's txn1 (commit failed)", read_all(t, "read_uncommitted", 3))
show("read_committed after A's txn1 (commit failed)", read_all(t, "read_committed", 3))
log("watermarks (ListOffsets latest)", watermarks(t))

# A's transaction 1 is still 'open' from the broker's point of view (no EndTxn reached it).
# --- step 2: B inits with the same transactional.id while A's txn is open
B = txn_producer(T)
t0 = time.time()
try:
    B.init_transactions(30); log(f"B.init_transactions ok ({time.time()-t0:.2f}s)")
except KafkaException as e:
    log(f"B.init_transactions FAILED after {time.time()-t0:.2f}s:", kerr(e))
show("read_uncommitted after B init", read_all(t, "read_uncommitted", 3))
show("read_committed after B init", read_all(t, "read_committed", 3))
log("watermarks", watermarks(t))

# --- step 3: A keeps producing in its (old-epoch) transaction
dr.clear()
try:
    A.produce(t, key="A", value="A-after-B-init", on_delivery=cb("A-after-B-init"))
    A.flush(10)
except KafkaException as e:
    log("A.produce raised:", kerr(e))
log("delivery reports:", dr)
for op in ("commit_transaction", "abort_transaction"):
    try:
        getattr(A, op)(10); log(f"A.{op} ok")
    except KafkaException as e:
        log(f"A.{op} FAILED:", kerr(e))
try:
    A.begin_transaction(); log("A.begin_transaction ok")
    A.produce(t, key="A", value="A-new-txn-after-B", on_delivery=cb("A-new-txn-after-B"))
    A.flush(10)
except KafkaException as e:
    log("A.begin/produce raised:", kerr(e))
log("delivery reports:", dr)

# --- step 4: B produces
dr.clear()
B.begin_transaction()
B.produce(t, key="B", value="B-txn-rec0", on_delivery=cb("B-txn-rec0"))
B.flush(10)
log("delivery reports:", dr)
show("read_uncommitted final", read_all(t, "read_uncommitted", 3))
show("read_committed final", read_all(t, "read_committed", 3))
log("watermarks", watermarks(t))
