"""mock_cluster.py - a second Kafka stand-in, for the Java and Go examples:
librdkafka's mock cluster as the confluent-kafka wheel ships it (librdkafka
2.1x), where kafka-standin links Debian's 2.0.2, whose answers the Java client
cannot parse and which serves only old request versions (the Go example's
default, Kafka 2.1.0's, is newer).

    .cache/venv/bin/python tests/examples/mock_cluster.py [BROKERS]

prints "BOOTSTRAP host:port,..." and serves until its stdin closes, as
kafka-standin does."""
import ctypes
import pathlib
import sys

import confluent_kafka

libs = pathlib.Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
lib = ctypes.CDLL(str(next(libs.glob("librdkafka*.so*"))))
lib.rd_kafka_conf_new.restype = ctypes.c_void_p
lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.c_char_p, ctypes.c_size_t]
lib.rd_kafka_new.restype = ctypes.c_void_p
lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]

err = ctypes.create_string_buffer(512)
conf = lib.rd_kafka_conf_new()
lib.rd_kafka_conf_set(conf, b"log_level", b"3", err, len(err))
rk = lib.rd_kafka_new(0, conf, err, len(err))  # 0: a producer handle, to own the cluster
mc = lib.rd_kafka_mock_cluster_new(rk, int(sys.argv[1]) if len(sys.argv) > 1 else 3) if rk else None
if not mc:
    sys.exit(f"mock_cluster: cannot start the mock cluster: {err.value.decode()}")
print("BOOTSTRAP " + lib.rd_kafka_mock_cluster_bootstraps(mc).decode(), flush=True)
sys.stdin.read()  # until the test closes it
