# sanity: plain produce / consume, watermarks
from common import *
t = new_topic("basic")
p = Producer({"bootstrap.servers": BOOT})
for i in range(3):
    p.produce(t, key=f"k{i}", value=f"plain-{i}")
print("flush remaining:", p.flush(10))
show("read_uncommitted", read_all(t, "read_uncommitted", 3))
show("read_committed", read_all(t, "read_committed", 3))
log("watermarks", watermarks(t))
