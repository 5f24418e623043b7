# f1. Is tansu's fence atomic with the append? A streams records in an open transaction (many in flight)
# while B inits the same transactional.id. A's record that lands at an offset AFTER the abort marker that
# B's init wrote would be an old-primary write that got past the fence.
import threading, random, sys
from common import *
TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
summary = []
for trial in range(TRIALS):
    t = new_topic("race")
    T = "txn-" + uuid.uuid4().hex[:6]
    A = txn_producer(T, **{"linger.ms": 0, "batch.num.messages": 1})
    A.init_transactions(10); A.begin_transaction()
    stop = threading.Event(); acked = []; failed = []; counter = [0]
    def cb(err, msg):
        (acked if err is None else failed).append(msg)   # no other Python calls here
    def stream():
        i = 0
        while not stop.is_set():
            try:
                A.produce(t, key="A", value=f"A-{i}", on_delivery=cb); i += 1; counter[0] = i
            except BufferError:
                pass
            except Exception:
                break
            A.poll(0)
            if i % 20 == 0: time.sleep(0.001)
        try: A.flush(5)
        except Exception: pass
    th = threading.Thread(target=stream); th.start()
    time.sleep(0.3 + random.random() * 0.4)
    B = txn_producer(T); B.init_transactions(10); produced_before_init_returned = counter[0]
    B.begin_transaction(); res = []
    B.produce(t, key="B", value="B-first", on_delivery=lambda e, m: res.append((e, m))); B.flush(10)
    time.sleep(0.3); stop.set(); th.join()
    b_off = res[0][1].offset() if res and res[0][0] is None else None
    recs = read_all(t, "read_uncommitted", 2)
    offs = [r[0] for r in recs]
    gaps = [o for o in range(0, offs[-1]) if o not in offs]      # control records (abort marker)
    marker = gaps[0] if gaps else None
    a_after_marker = [r for r in recs if r[1] == "A" and marker is not None and r[0] > marker]
    a_after_b = [r for r in recs if r[1] == "A" and b_off is not None and r[0] > b_off]
    acked_after_marker = [m.offset() for m in acked if marker is not None and m.offset() > marker]
    line = (f"trial {trial}: A acked {len(acked)}, A failed {len(failed)}, abort marker at {marker}, "
            f"B-first at {b_off}, A records after marker {len(a_after_marker)} {[r[0] for r in a_after_marker][:5]}, "
            f"A records after B-first {len(a_after_b)}, acks for offsets after marker {acked_after_marker[:5]}")
    late = [r for r in a_after_marker if int(r[2].split("-")[1]) >= produced_before_init_returned]
    line += (f", A had handed {produced_before_init_returned} records to librdkafka when B.init returned; "
             f"stragglers handed over after that: {len(late)} {[r[2] for r in late][:5]}")
    log(line); summary.append((len(a_after_marker), len(a_after_b), len(late)))
log("trials with an A record after the abort marker:", sum(1 for a, b, c in summary if a), "/", TRIALS,
    "; after B's first record:", sum(1 for a, b, c in summary if b), "/", TRIALS,
    "; A records handed to librdkafka after B.init returned yet appended:", sum(1 for a, b, c in summary if c), "/", TRIALS,
    "; max stragglers in one trial:", max(a for a, b, c in summary))
