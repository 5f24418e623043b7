# f2. Two producers on separate connections append at once (the split-brain case) while a consumer tails
# the partition. tansu advances the high watermark before it stores the batch, so a Fetch can list a
# later batch while an earlier one is still being stored: does the tailing reader skip records?
import threading, sys
from common import *
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
for rnd in range(ROUNDS):
    t = new_topic("tail")
    stop = threading.Event()
    def hammer(name):
        p = Producer({"bootstrap.servers": BOOT, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
        i = 0
        while not stop.is_set():
            try:
                p.produce(t, key=name, value=f"{name}-{i}"); i += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)
            if i % 50 == 0: time.sleep(0.002)
        p.flush(10)
    tailed = []
    def tail():
        c = Consumer({"bootstrap.servers": BOOT, "group.id": "tail-" + uuid.uuid4().hex[:6],
                      "isolation.level": "read_uncommitted", "fetch.wait.max.ms": 10})
        c.assign([TopicPartition(t, 0, 0)])
        quiet = None
        while True:
            m = c.poll(0.1)
            if m is None:
                if stop.is_set():
                    quiet = quiet or time.time()
                    if time.time() - quiet > 3: break
                continue
            if not m.error(): tailed.append(m.offset())
        c.close()
    ths = [threading.Thread(target=hammer, args=(n,)) for n in ("P1", "P2")] + [threading.Thread(target=tail)]
    for th in ths: th.start()
    time.sleep(3); stop.set()
    for th in ths: th.join()
    full = [r[0] for r in read_all(t, "read_uncommitted", 4)]
    missed = sorted(set(full) - set(tailed))
    log(f"round {rnd}: records in partition {len(full)}, tailing reader got {len(tailed)}, "
        f"skipped by the tailing reader: {len(missed)} {missed[:10]}")
