# Raw ApiVersions v0 request: what API keys / versions does tansu advertise?
import socket, struct, sys
NAMES = {0:"Produce",1:"Fetch",2:"ListOffsets",3:"Metadata",8:"OffsetCommit",9:"OffsetFetch",10:"FindCoordinator",
 11:"JoinGroup",12:"Heartbeat",13:"LeaveGroup",14:"SyncGroup",15:"DescribeGroups",16:"ListGroups",17:"SaslHandshake",
 18:"ApiVersions",19:"CreateTopics",20:"DeleteTopics",21:"DeleteRecords",22:"InitProducerId",23:"OffsetForLeaderEpoch",
 24:"AddPartitionsToTxn",25:"AddOffsetsToTxn",26:"EndTxn",27:"WriteTxnMarkers",28:"TxnOffsetCommit",29:"DescribeAcls",
 32:"DescribeConfigs",33:"AlterConfigs",35:"DescribeLogDirs",36:"SaslAuthenticate",37:"CreatePartitions",
 42:"DeleteGroups",44:"IncrementalAlterConfigs",47:"OffsetDelete",50:"DescribeUserScramCredentials",
 51:"AlterUserScramCredentials",60:"DescribeCluster",61:"DescribeProducers",65:"DescribeTransactions",66:"ListTransactions",
 68:"ConsumerGroupHeartbeat",69:"ConsumerGroupDescribe",75:"DescribeTopicPartitions"}
host, port = "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 19092
cid = b"probe"
body = struct.pack(">hhih", 18, 0, 1, len(cid)) + cid
s = socket.create_connection((host, port))
s.sendall(struct.pack(">i", len(body)) + body)
n = struct.unpack(">i", s.recv(4))[0]
data = b""
while len(data) < n:
    data += s.recv(n - len(data))
corr, err, cnt = struct.unpack(">ihi", data[:10])
print("error_code", err, "apis", cnt)
off = 10
for _ in range(cnt):
    k, lo, hi = struct.unpack(">hhh", data[off:off+6]); off += 6
    print(f"  {k:3d} {NAMES.get(k,'?'):28s} v{lo}-v{hi}")
