"""The Java example (deploy/examples/java: the CloudEvents SDK's Kafka binding,
io.cloudevents:cloudevents-kafka's CloudEventDeserializer, over kafka-clients)
builds with Maven, offline, and reads what the bridge wrote: every provider's
records, a dead letter, a redelivery recognised as a duplicate, a bounded
dedup store, offsets committed, SIGTERM leaving the group (examples.py says
what is checked).

No librdkafka mock cluster serves the Java client the example ships with
(kafka-clients 3.9): from 2.4 on the client opens each connection with
ApiVersions v3, which the mock answers in a layout the client reads as a
throttle of about 20 minutes, so it never sends another request (still so
with librdkafka 2.14.2's mock: measured, 0 records read in 140 s). On the
stand-in the test therefore builds the same source against kafka-clients
2.3.1 (-Dkafka-clients.version; the example uses no API that differs). With
WB_EXAMPLES_BROKERS (a real cluster) it builds and runs the example exactly
as shipped; tests/examples/test_secured_examples.py runs it as shipped on
real Kafka 4.1.1.

Its artifacts and Maven's plugins are in ~/.m2 once deploy/install-deps.sh
--test built both variants; the build here runs with mvn -o."""
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from examples import (BUILD, EXAMPLES, check_example, check_rejects_bad_options,  # noqa: E402,F401
                      run_tool, unavailable, written)

JVM_SIGTERM_STATUS = 143  # 128 + SIGTERM, after the shutdown hook let the loop commit and close
STANDIN_KAFKA_CLIENTS = "2.3.1"  # the last Java client before ApiVersions v3 (see above)

# new topics within a second (run 3 of check_example)
REFRESH = ["-X", "metadata.max.age.ms=1000"]


def build(kafka_clients=None):
    mvn, java = shutil.which("mvn"), shutil.which("java")
    if mvn is None or java is None:
        unavailable("mvn or java is not installed")
    out = BUILD / ("java" if kafka_clients is None else f"java-kafka-clients-{kafka_clients}")
    cmd = [mvn, "-o", "-q", "-B", "-Dstyle.color=never", "package", f"-Dexample.buildDir={out}"]
    if kafka_clients is not None:
        cmd.append(f"-Dkafka-clients.version={kafka_clients}")
    run_tool(cmd, cwd=EXAMPLES / "java")
    assert (out / "lib" / f"kafka-clients-{kafka_clients or '3.9.1'}.jar").is_file()
    return [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m", "-jar",
            out / "webhook-consumer.jar"]


def test_java_example(written):
    bootstrap, writes, on_standin = written
    command = build(STANDIN_KAFKA_CLIENTS if on_standin else None)
    check_example(command, bootstrap, writes, "example-java", sigterm_status=JVM_SIGTERM_STATUS,
                  refresh_args=REFRESH)


def test_java_example_as_shipped_builds_and_rejects_bad_options():
    check_rejects_bad_options(build())
