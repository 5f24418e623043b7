# 3. SeaweedFS (weed mini, the binary services.sh installs) conditional writes: If-None-Match: * and
# If-Match: <etag> on PUT (S3 compare-and-swap), plus concurrent racers.
import os, uuid, threading, boto3, botocore
from botocore.config import Config
EP = os.environ.get("PROBE_S3", "http://127.0.0.1:18333")
s3 = boto3.client("s3", endpoint_url=EP, region_name="us-east-1",
                  aws_access_key_id="govledger-test", aws_secret_access_key="govledger-test-secret",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
def code(e): return f"{e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error'].get('Code')}"
def put(key, body, **kw):
    try:
        r = s3.put_object(Bucket=B, Key=key, Body=body, **kw)
        return f"200 etag={r['ETag']}", r["ETag"]
    except botocore.exceptions.ClientError as e:
        return code(e), None
B = "probe-" + uuid.uuid4().hex[:8]
s3.create_bucket(Bucket=B); print("bucket", B)
print("boto3", boto3.__version__)
k = "lease.json"
r1, e1 = put(k, b"v1", IfNoneMatch="*"); print("PUT If-None-Match:* (new key)      ->", r1)
r2, _ = put(k, b"v1-again", IfNoneMatch="*"); print("PUT If-None-Match:* (key exists)   ->", r2)
print("GET after                          ->", s3.get_object(Bucket=B, Key=k)["Body"].read())
r3, e3 = put(k, b"v2", IfMatch=e1); print("PUT If-Match:<current etag>        ->", r3)
r4, _ = put(k, b"v3-stale", IfMatch=e1); print("PUT If-Match:<stale etag>          ->", r4)
r5, _ = put(k, b"v3-bogus", IfMatch='"00000000000000000000000000000000"'); print("PUT If-Match:<bogus etag>          ->", r5)
r6, _ = put("missing.json", b"x", IfMatch=e1); print("PUT If-Match on a missing key      ->", r6)
print("GET after                          ->", s3.get_object(Bucket=B, Key=k)["Body"].read())
# same body twice: is the etag content-derived (MD5)? then If-Match cannot tell two writes of the same bytes apart
r7, e7 = put(k, b"same", IfMatch=e3); r8, e8 = put(k, b"same", IfMatch=e7)
print("two PUTs of identical bytes, etags  ->", e7, e8, "(identical => ABA: the etag names content, not a version)")
# races: 16 writers, same precondition, only one may win
for label, kw_of in (("If-None-Match:* on a fresh key", lambda: {"IfNoneMatch": "*"}),
                     ("If-Match:<same etag>", None)):
    key = "race-" + uuid.uuid4().hex[:6]
    if kw_of is None:
        _, et = put(key, b"base"); kw_of = (lambda et=et: {"IfMatch": et})
    results = []
    def w(i):
        results.append(put(key, f"writer-{i}".encode(), **kw_of())[0].split()[0])
    ths = [threading.Thread(target=w, args=(i,)) for i in range(16)]
    [t.start() for t in ths]; [t.join() for t in ths]
    print(f"race, 16 concurrent PUTs with {label}: results {sorted(results)} -> winners {results.count('200')}")
# versioning / object lock bucket (services.sh's tests use Object Lock): does If-Match still work there?
B2 = "probe-lock-" + uuid.uuid4().hex[:6]
try:
    s3.create_bucket(Bucket=B2, ObjectLockEnabledForBucket=True)
    B_saved, B = B, B2
    a, ea = put(k, b"L1", IfNoneMatch="*"); b, _ = put(k, b"L1b", IfNoneMatch="*")
    c, ec = put(k, b"L2", IfMatch=ea); d, _ = put(k, b"L3", IfMatch=ea)
    print("object-lock bucket: If-None-Match new", a, "| again", b, "| If-Match current", c, "| If-Match stale", d)
    B = B_saved
except botocore.exceptions.ClientError as e:
    print("object-lock bucket:", code(e))
