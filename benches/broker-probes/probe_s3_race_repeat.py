# 3 (cont). Repeat the CAS races: 30 rounds x 16 concurrent writers each, for If-None-Match:* and If-Match.
import os, uuid, threading, boto3, botocore
from botocore.config import Config
from concurrent.futures import ThreadPoolExecutor
mk = lambda ak, sk: boto3.client("s3", endpoint_url="http://127.0.0.1:18333", region_name="us-east-1",
        aws_access_key_id=ak, aws_secret_access_key=sk,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, max_pool_connections=32))
s3 = mk("govledger-test", "govledger-test-secret")
B = "race-" + uuid.uuid4().hex[:8]; s3.create_bucket(Bucket=B)
def put(key, body, **kw):
    try: return s3.put_object(Bucket=B, Key=key, Body=body, **kw)["ETag"]
    except botocore.exceptions.ClientError as e: return e.response["ResponseMetadata"]["HTTPStatusCode"]
bad = {"inm": 0, "im": 0}
with ThreadPoolExecutor(16) as ex:
    for rnd in range(30):
        key = f"k{rnd}"
        r = list(ex.map(lambda i: put(key, f"w{i}".encode(), IfNoneMatch="*"), range(16)))
        wins = [x for x in r if isinstance(x, str)]
        if len(wins) != 1: bad["inm"] += 1
        base = wins[0] if wins else None
        r = list(ex.map(lambda i: put(key, f"v{i}".encode(), IfMatch=base), range(16)))
        if len([x for x in r if isinstance(x, str)]) != 1: bad["im"] += 1
print("30 rounds x 16 writers: rounds with != 1 winner:", bad)
try:
    mk("govledger-test", "wrong-secret").put_object(Bucket=B, Key="x", Body=b"x"); print("wrong secret: PUT accepted")
except botocore.exceptions.ClientError as e:
    print("wrong secret: PUT ->", e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code"))
