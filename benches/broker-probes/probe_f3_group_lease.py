# f3. Could a consumer group be the lease? (1) does tansu fence offset commits by generation/member
# (a non-member commit while the group has an active member; a member committing after it was replaced)?
# (2) membership handover: member 1 holds the single partition; member 2 joins; member 1 is SIGKILLed:
# how long until member 2 is assigned the partition?
import subprocess, signal, sys
from common import *

def member(group, t, name, session_ms=6000):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": group, "session.timeout.ms": session_ms,
                  "heartbeat.interval.ms": 1000, "enable.auto.commit": False,
                  "partition.assignment.strategy": "range", "auto.offset.reset": "earliest"})
    got = {"assigned": None}
    c.subscribe([t], on_assign=lambda cc, parts: got.__setitem__("assigned", [p.partition for p in parts]),
                on_revoke=lambda cc, parts: got.__setitem__("assigned", []))
    return c, got

def poll_until(c, got, cond, secs):
    end = time.time() + secs
    while time.time() < end:
        c.poll(0.2)
        if cond(): return True
    return False

if len(sys.argv) > 1 and sys.argv[1] == "child":
    c, got = member(sys.argv[2], sys.argv[3], "m1")
    poll_until(c, got, lambda: got["assigned"], 20)
    print("CHILD assigned", got["assigned"], flush=True)
    while True: c.poll(0.2)

t = new_topic("grp")
p = Producer({"bootstrap.servers": BOOT}); [p.produce(t, value=f"v{i}") for i in range(10)]; p.flush(10)
G = "lease-" + uuid.uuid4().hex[:6]

# (1) commits
c1, g1 = member(G, t, "c1")
ok = poll_until(c1, g1, lambda: g1["assigned"], 20)
log("c1 joined; assignment", g1["assigned"], "memberid", c1.memberid())
r = c1.commit(offsets=[TopicPartition(t, 0, 1)], asynchronous=False); log("c1 commit offset 1 ->", [(x.offset, x.error) for x in r])
out = Consumer({"bootstrap.servers": BOOT, "group.id": G, "enable.auto.commit": False})
out.assign([TopicPartition(t, 0, 0)])
try:
    r = out.commit(offsets=[TopicPartition(t, 0, 7)], asynchronous=False)
    log("NON-member commit offset 7 while c1 is an active member ->", [(x.offset, x.error) for x in r])
except KafkaException as e:
    log("NON-member commit offset 7 ->", kerr(e))
log("committed now:", [(x.offset) for x in c1.committed([TopicPartition(t, 0)], timeout=5)])
out.close()

# (2) handover after SIGKILL
c1.close()
child = subprocess.Popen([sys.executable, __file__, "child", G, t], stdout=subprocess.PIPE, text=True)
log(child.stdout.readline().strip())
c2, g2 = member(G, t, "c2")
poll_until(c2, g2, lambda: g2["assigned"] is not None, 15)
log("c2 joined while child holds the group; c2 assignment:", g2["assigned"])
os.kill(child.pid, signal.SIGKILL); child.wait(); t0 = time.time()
log("child SIGKILLed (session.timeout.ms=6000)")
if poll_until(c2, g2, lambda: g2["assigned"] == [0], 40):
    log(f"c2 assigned partition 0 {time.time()-t0:.1f}s after the SIGKILL")
else:
    log("c2 NOT assigned partition 0 within 40 s; assignment", g2["assigned"])
r = c2.commit(offsets=[TopicPartition(t, 0, 9)], asynchronous=False); log("c2 commit 9 ->", [(x.offset, x.error) for x in r])
c2.close()
