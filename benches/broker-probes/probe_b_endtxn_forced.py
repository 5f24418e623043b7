# b/forced: tansu 0.6.0 does not advertise EndTxn (api key 26) in ApiVersions, so librdkafka refuses to
# commit/abort. Here librdkafka is told NOT to ask ApiVersions and to assume a 2.1 broker, so it sends
# EndTxn anyway: what does tansu do with it?
import sys
from common import *
fallback = sys.argv[1] if len(sys.argv) > 1 else "2.1.0"
t = new_topic("forced")
T = "txn-" + uuid.uuid4().hex[:6]
A = txn_producer(T, **{"api.version.request": False, "broker.version.fallback": fallback})
try:
    A.init_transactions(15); log("init ok")
    A.begin_transaction()
    A.produce(t, key="A", value="to-commit"); A.flush(10)
    t0 = time.time()
    A.commit_transaction(15); log(f"commit_transaction ok ({time.time()-t0:.2f}s)")
except KafkaException as e:
    log("FAILED:", kerr(e))
show("read_committed", read_all(t, "read_committed", 3))
log("errors via error_cb:", ERRORS)
