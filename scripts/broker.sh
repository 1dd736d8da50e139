#!/usr/bin/env bash
# Starts Apache Kafka's own broker (kafka.Kafka, from the jars scripts/setup.sh put
# in the cache) as one combined broker+controller KRaft node on free loopback ports,
# and waits until it answers a metadata request. Prints the bootstrap address on
# stdout; the broker's pid goes to PID_FILE so the caller can stop it.
#
#   broker.sh PID_FILE [--dir DIR] [--secure]
#   broker.sh --stop PID_FILE     stops it (SIGTERM, a clean shutdown) and waits
#
#   --dir DIR   keep the broker's config, log dirs and log in DIR (default: a new
#               temporary directory). A DIR that already holds a formatted broker
#               is started again on the same log dirs and ports (restart tests).
#   --secure    also open SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
#               SASL_SSL and SSL (client certificates required) listeners. The
#               certificates are made with openssl in DIR/tls, the SCRAM users
#               are created at format time, and DIR/listeners.env names every
#               listener, user and file a client needs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"

if [ "${1:-}" = "--stop" ]; then
    pid="$(cat "${2:?usage: broker.sh --stop PID_FILE}" 2>/dev/null)" || exit 0
    kill "$pid" 2>/dev/null || exit 0
    # A clean shutdown takes a few seconds; after 30 s it is killed.
    timeout 30 tail --pid="$pid" -f /dev/null || kill -9 "$pid" 2>/dev/null || true
    exit 0
fi
pid_file="${1:?usage: broker.sh PID_FILE [--dir DIR] [--secure]}"
shift
dir=""
secure=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --secure) secure=1; shift ;;
        *) echo "broker: unknown argument $1" >&2; exit 2 ;;
    esac
done

[ -f "$KAFKA_JARS/.complete" ] || {
    echo "broker: the Kafka broker jars are missing from $KAFKA_JARS; run scripts/setup.sh" >&2
    exit 1
}
[ -n "$dir" ] || dir="$(mktemp -d "${TMPDIR:-/tmp}/kafka-broker.XXXXXX")"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
props="$dir/server.properties"
log="$dir/broker.log"
java_cp="$KAFKA_JARS/*"
java_opts=(-Xms512m -Xmx1g -XX:+UseG1GC -XX:ParallelGCThreads=2 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_JVM_DIR/log4j2.properties" "-Dkafka.test.log=$log")

free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Test certificates: a CA, the broker's certificate for 127.0.0.1/localhost, and a
# client certificate for mTLS, all signed by the CA; a second CA nobody trusts.
make_certificates() {
    local tls="$1"
    mkdir -p "$tls"
    (
        cd "$tls"
        local subj
        for ca in ca other-ca; do
            openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca.key" -out "$ca.pem" \
                -days 2 -subj "/CN=test-$ca" 2>/dev/null
        done
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        for who in server client; do
            subj="/CN=$who"
            [ "$who" = server ] && subj="/CN=localhost"
            openssl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" \
                -subj "$subj" 2>/dev/null
            openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out "$who.pem" -days 2 -extfile "$who.ext" 2>/dev/null
        done
        openssl pkcs12 -export -in server.pem -inkey server.key -name broker \
            -out server.p12 -passout pass:broker-keystore-secret
    )
}

if [ -f "$dir/ports" ]; then
    # A restart on the same log dirs: same ports, same config, no format.
    read -r port cport sasl_port sasl_ssl_port ssl_port <"$dir/ports"
else
    read -r port cport sasl_port sasl_ssl_port ssl_port <<<"$(free_ports 5)"
    listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    advertised="PLAINTEXT://127.0.0.1:$port"
    if [ "$secure" -eq 1 ]; then
        make_certificates "$dir/tls"
        secure_listeners="SASL_PLAINTEXT://127.0.0.1:$sasl_port,SASL_SSL://127.0.0.1:$sasl_ssl_port,SSL://127.0.0.1:$ssl_port"
        listeners="$listeners,$secure_listeners"
        advertised="$advertised,$secure_listeners"
    fi
    cat >"$props" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
log.dirs=$dir/data
num.partitions=1
# One node: every internal topic at replication factor 1, and few partitions, so
# the first group or transaction does not wait for 50 partitions to be created.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
# Tests join and leave groups all the time; no waiting for more members.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# The cleaner looks for dirty logs every half second (default 15 s), so tests
# can watch it compact a changelog.
log.cleaner.backoff.ms=500
log.cleaner.dedupe.buffer.size=16777216
EOF
    if [ "$secure" -eq 1 ]; then
        tls="$dir/tls"
        cat >>"$props" <<EOF
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-plain-secret";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-plain-secret";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/server.p12
ssl.keystore.password=broker-keystore-secret
ssl.key.password=broker-keystore-secret
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
EOF
        cat >"$dir/listeners.env" <<EOF
SASL_PLAINTEXT=127.0.0.1:$sasl_port
SASL_SSL=127.0.0.1:$sasl_ssl_port
SSL=127.0.0.1:$ssl_port
PLAIN_USER=alice
PLAIN_PASSWORD=alice-plain-secret
SCRAM_SHA_256_USER=bob
SCRAM_SHA_256_PASSWORD=bob-scram256-secret
SCRAM_SHA_512_USER=carol
SCRAM_SHA_512_PASSWORD=carol-scram512-secret
CA=$tls/ca.pem
OTHER_CA=$tls/other-ca.pem
CLIENT_CERT=$tls/client.pem
CLIENT_KEY=$tls/client.key
EOF
    fi
    # Like Kafka's Uuid.randomUuid: never starting with '-', which kafka-storage's
    # argument parser would take for an option (and fail the format).
    cluster_id="$(python3 -c '
import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not cid.startswith("-"):
        break
print(cid)')"
    format_args=(format --ignore-formatted -t "$cluster_id" -c "$props")
    if [ "$secure" -eq 1 ]; then
        format_args+=(--add-scram 'SCRAM-SHA-256=[name=bob,password=bob-scram256-secret]'
            --add-scram 'SCRAM-SHA-512=[name=carol,password=carol-scram512-secret]')
    fi
    if ! java "${java_opts[@]}" -cp "$java_cp" kafka.tools.StorageTool "${format_args[@]}" \
        >"$dir/format.log" 2>&1; then
        echo "broker: formatting the KRaft log dir failed:" >&2
        cat "$dir/format.log" >&2
        exit 1
    fi
    echo "$port $cport $sasl_port $sasl_ssl_port $ssl_port" >"$dir/ports"
fi

java "${java_opts[@]}" -cp "$java_cp" kafka.Kafka "$props" >>"$dir/broker.out" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"

# Ready when a Metadata request (v4, which Kafka 4 still serves) lists this broker.
if ! python3 - "$port" "$pid" <<'EOF'
import os, socket, struct, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
client = b"broker.sh"
# api_key 3 (Metadata), version 4, correlation id 1, client id; all topics (null
# array), no auto-creation.
body = struct.pack(">hhih", 3, 4, 1, len(client)) + client + struct.pack(">ib", -1, 0)
deadline = time.time() + 120
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the broker process exited during startup")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(4, socket.MSG_WAITALL)
            (size,) = struct.unpack(">i", head)
            resp = s.recv(size, socket.MSG_WAITALL)
            # correlation id, throttle time, then the brokers array's length.
            (brokers,) = struct.unpack(">i", resp[8:12])
            if brokers >= 1:
                sys.exit(0)
    except (OSError, struct.error):
        pass
    time.sleep(0.2)
sys.exit("no metadata answer within 120 s")
EOF
then
    echo "broker: Kafka did not become ready on 127.0.0.1:$port; its log ($log):" >&2
    tail -n 40 "$log" "$dir/broker.out" >&2 || true
    kill "$pid" 2>/dev/null || true
    exit 1
fi
echo "broker: Apache Kafka $KAFKA_VERSION (pid $pid) listening on 127.0.0.1:$port, dir $dir" >&2
echo "127.0.0.1:$port"
