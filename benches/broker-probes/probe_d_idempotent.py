# d. Idempotent (non-transactional) producers: (1) two of them at once: any fencing? (2) the epoch bump
# librdkafka does after a message times out with unknown outcome (broker SIGSTOPped, message.timeout.ms
# passes, broker SIGCONTinued): what do the later sends get?
import os
import signal
from common import *
TANSU_PID = int(os.environ["TANSU_PID"])  # the probe instance, which it pauses

def idem(name, **extra):
    conf = {"bootstrap.servers": BOOT, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
            "message.timeout.ms": 3000, "request.timeout.ms": 2000,
            "error_cb": lambda e: ERRORS.append((name, e.name(), e.fatal(), e.str()))}
    conf.update(extra)
    return Producer(conf)

def send(p, t, value, timeout=10):
    res = []
    p.produce(t, key="k", value=value, on_delivery=lambda err, msg: res.append((err, msg)))
    p.flush(timeout)
    if not res:
        return "no delivery report yet"
    err, msg = res[0]
    return f"ok offset {msg.offset()}" if err is None else "FAILED " + kerr(err)

log("librdkafka", __import__("confluent_kafka").libversion())
log("=== d1: two idempotent producers at once")
t = new_topic("idem")
P1, P2 = idem("P1"), idem("P2")
for i in range(2):
    log("P1:", send(P1, t, f"P1-{i}"), "| P2:", send(P2, t, f"P2-{i}"))
show("read_uncommitted", read_all(t, "read_uncommitted", 3))

log("=== d2: epoch bump after a timed-out message")
t = new_topic("bump")
P = idem("P", **({"debug": "eos"} if os.environ.get("EOS_DEBUG") else {}))
log("before stop:", send(P, t, "before-stop"))
os.kill(TANSU_PID, signal.SIGSTOP)
try:
    log("tansu SIGSTOPped; sending with message.timeout.ms=3000:", send(P, t, "during-stop", 6))
    time.sleep(1)
finally:
    os.kill(TANSU_PID, signal.SIGCONT)
log("tansu SIGCONTinued")
for i in range(4):
    log(f"after continue #{i}:", send(P, t, f"after-{i}"))
    time.sleep(1)
log("error_cb:", ERRORS)
show("read_uncommitted", read_all(t, "read_uncommitted", 3))
try:
    P.init_transactions(1)
except Exception as e:
    pass
P3 = idem("P3")
log("a fresh idempotent producer afterwards:", send(P3, t, "fresh-producer"))
