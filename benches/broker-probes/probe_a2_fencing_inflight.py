# a (cont). A has an open transaction with records in flight; B inits with the same transactional.id;
# A keeps producing. Second scenario: A inited but idle (no open txn) when B inits.
from common import *

def cb(dr, tag):
    def f(err, msg):
        dr.append((tag, err, msg))   # no Python calls here: a pending fatal error breaks them
    return f

def fmt(dr):
    return [(tag, None if err is None else kerr(err), msg.offset() if err is None else None) for tag, err, msg in dr]

log("=== scenario 1: A's transaction open with a record, then B.init, then A produces more")
t = new_topic("fence2")
T = "txn-" + uuid.uuid4().hex[:6]
dr = []
A = txn_producer(T); A.init_transactions(10)
A.begin_transaction()
A.produce(t, key="A", value="A-open-rec0", on_delivery=cb(dr, "A-open-rec0")); A.flush(10)
log("A delivery:", fmt(dr))
B = txn_producer(T)
t0 = time.time(); B.init_transactions(30); log(f"B.init_transactions ok ({time.time()-t0:.2f}s)")
dr.clear()
for i in range(3):
    try:
        A.produce(t, key="A", value=f"A-after-B-init-{i}", on_delivery=cb(dr, f"A-after-B-init-{i}"))
    except KafkaException as e:
        log("A.produce raised:", kerr(e))
    A.flush(10)
    time.sleep(0.2)
log("A delivery reports after B.init:", fmt(dr))
try:
    A.abort_transaction(10); log("A.abort_transaction ok")
except KafkaException as e:
    log("A.abort_transaction FAILED:", kerr(e))
try:
    A.begin_transaction(); log("A.begin_transaction ok")
except KafkaException as e:
    log("A.begin_transaction FAILED:", kerr(e))
show("read_uncommitted", read_all(t, "read_uncommitted", 3))
show("read_committed", read_all(t, "read_committed", 3))
log("ListOffsets watermarks", watermarks(t))

log("=== scenario 2: A inited (no open txn), B inits, then A begins and produces")
t = new_topic("fence3")
T = "txn-" + uuid.uuid4().hex[:6]
A = txn_producer(T); A.init_transactions(10)
B = txn_producer(T); B.init_transactions(10); log("B.init ok")
dr = []
try:
    A.begin_transaction(); log("A.begin_transaction ok (local only)")
    A.produce(t, key="A", value="A-after-B", on_delivery=cb(dr, "A-after-B"))
    A.flush(10)
except BaseException as e:
    log("A raised:", type(e).__name__, e, "cause:", repr(e.__cause__))
log("A delivery reports:", fmt(dr))
show("read_uncommitted", read_all(t, "read_uncommitted", 3))
show("read_committed", read_all(t, "read_committed", 3))

log("=== scenario 3: three generations: A, B, C with the same id; C.init while B's txn open")
t = new_topic("fence4")
T = "txn-" + uuid.uuid4().hex[:6]
dr = []
A = txn_producer(T); A.init_transactions(10)
B = txn_producer(T); B.init_transactions(10)
B.begin_transaction(); B.produce(t, key="B", value="B-open", on_delivery=cb(dr, "B-open")); B.flush(10)
C = txn_producer(T); t0 = time.time(); C.init_transactions(10); log(f"C.init ok ({time.time()-t0:.2f}s)")
B.produce(t, key="B", value="B-after-C", on_delivery=cb(dr, "B-after-C")); B.flush(10)
C.begin_transaction(); C.produce(t, key="C", value="C-rec", on_delivery=cb(dr, "C-rec")); C.flush(10)
log("delivery reports:", fmt(dr))
show("read_uncommitted", read_all(t, "read_uncommitted", 3))
show("read_committed", read_all(t, "read_committed", 3))
