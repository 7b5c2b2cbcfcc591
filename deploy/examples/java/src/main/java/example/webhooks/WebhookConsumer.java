package example.webhooks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.CloudEventDeserializer;
import java.io.IOException;
import java.time.Duration;
import java.time.format.DateTimeFormatter;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A consuming service for webhook-bridge's records, in Java: the Kafka client reads them, the
 * CloudEvents SDK's Kafka binding ({@link CloudEventDeserializer}) decodes them.
 *
 * <pre>
 *   mvn -q package
 *   java -jar target/webhook-consumer.jar --brokers localhost:9092 --group billing-service
 * </pre>
 *
 * <p>What every service reading the bridge's topics gets right, here in one file:
 *
 * <ul>
 *   <li>its own consumer group (group.id = the service's name);
 *   <li>a subscription by pattern (^webhooks\..*), so topics made later for new event types are
 *       picked up at the next metadata refresh (metadata.max.age.ms);
 *   <li>deduplication on the CloudEvents source + id (delivery is at-least-once), in a bounded
 *       in-memory store: a real service keeps the ids it applied in its database, under a unique
 *       key, in the transaction of the effect;
 *   <li>offsets committed (commitSync) only after the records were handled;
 *   <li>dead letters (type &lt;provider&gt;.deadletter) told apart from events;
 *   <li>SIGTERM: finish the records in hand, commit, leave the group (the JVM then exits 143).
 * </ul>
 *
 * <p>It prints one JSON line per record on stdout ("kind": event, duplicate, deadletter or
 * invalid, then where it was and what it holds); diagnostics go to stderr. Replace handleEvent
 * and handleDeadLetter with your own logic.
 */
public final class WebhookConsumer {
    private static final Pattern DEAD_LETTER = Pattern.compile("^[a-z0-9]+\\.deadletter$");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The last {@code capacity} (source, id) pairs; the least recently seen goes first. */
    static final class SeenEvents extends LinkedHashMap<List<String>, Boolean> {
        private final int capacity;

        SeenEvents(int capacity) {
            super(16, 0.75f, true); // access order: a hit makes the pair recent again
            this.capacity = capacity;
        }

        /** Records the pair; true if it was already there. */
        boolean seenBefore(String source, String id) {
            return capacity > 0 && put(List.of(source, id), Boolean.TRUE) != null;
        }

        @Override
        protected boolean removeEldestEntry(Map.Entry<List<String>, Boolean> eldest) {
            return size() > capacity;
        }
    }

    /** What the value deserializer made of a record: the CloudEvent, or why it is not one. */
    record Decoded(CloudEvent event, String error) {}

    /**
     * The binding's CloudEventDeserializer, made never to throw: a record that is not a CloudEvent
     * is reported and skipped rather than failing every poll of its partition (a poison pill).
     */
    public static final class SafeDeserializer implements Deserializer<Decoded> {
        private final CloudEventDeserializer binding = new CloudEventDeserializer();

        @Override
        public void configure(Map<String, ?> configs, boolean isKey) {
            binding.configure(configs, isKey);
        }

        @Override
        public Decoded deserialize(String topic, byte[] data) {
            return deserialize(topic, new RecordHeaders(), data);
        }

        @Override
        public Decoded deserialize(String topic, Headers headers, byte[] data) {
            if (data == null) {
                return null;
            }
            try {
                return new Decoded(binding.deserialize(topic, headers, data), null);
            } catch (RuntimeException e) {
                return new Decoded(null, e.toString());
            }
        }

        @Override
        public void close() {
            binding.close();
        }
    }

    private final SeenEvents seen;
    private long handled;

    WebhookConsumer(int dedupSize) {
        this.seen = new SeenEvents(dedupSize);
    }

    static void emit(ObjectNode line) {
        System.out.println(line.toString());
        System.out.flush();
    }

    static ObjectNode where(String kind, String topic, int partition, long offset) {
        ObjectNode line = JSON.createObjectNode();
        line.put("kind", kind).put("topic", topic).put("partition", partition).put("offset", offset);
        return line;
    }

    static ObjectNode describe(String kind, ConsumerRecord<String, CloudEvent> record)
            throws IOException {
        CloudEvent event = record.value();
        ObjectNode line = where(kind, record.topic(), record.partition(), record.offset());
        line.put("key", record.key())
                .put("id", event.getId())
                .put("source", event.getSource().toString())
                .put("type", event.getType())
                .put("subject", event.getSubject())
                .put("time", event.getTime() == null ? null
                        : event.getTime().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME));
        for (String name : List.of("provider", "providerevent", "receivedat", "deadletterreason")) {
            Object value = event.getExtension(name);
            line.put(name, value == null ? null : value.toString());
        }
        if (event.getData() != null) {
            line.set("data", JSON.readTree(event.getData().toBytes()));
        }
        return line;
    }

    static void handleEvent(ConsumerRecord<String, CloudEvent> record) throws IOException {
        emit(describe("event", record));
    }

    /**
     * A body the bridge could not read as its provider's event: alert, park it, or fix the
     * provider description and run {@code webhook-bridge replay}.
     */
    static void handleDeadLetter(ConsumerRecord<String, CloudEvent> record) throws IOException {
        emit(describe("deadletter", record));
    }

    void process(ConsumerRecord<String, Decoded> in) throws IOException {
        handled++;
        if (in.value() == null || in.value().event() == null) { // not a CloudEvent: report, go on
            emit(where("invalid", in.topic(), in.partition(), in.offset())
                    .put("reason", in.value() == null ? "no value" : in.value().error()));
            return;
        }
        CloudEvent event = in.value().event();
        ConsumerRecord<String, CloudEvent> record = new ConsumerRecord<>(in.topic(), in.partition(),
                in.offset(), in.key(), event);
        if (seen.seenBefore(event.getSource().toString(), event.getId())) {
            emit(where("duplicate", record.topic(), record.partition(), record.offset())
                    .put("id", event.getId())
                    .put("source", event.getSource().toString())
                    .put("type", event.getType()));
        } else if (DEAD_LETTER.matcher(event.getType()).matches()) {
            handleDeadLetter(record);
        } else {
            handleEvent(record);
        }
    }

    static void log(String message) {
        System.err.println("consumer: " + message);
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> env = System.getenv();
        String brokers = env.getOrDefault("WEBHOOK_CONSUMER_BROKERS", "localhost:9092");
        String group = env.getOrDefault("WEBHOOK_CONSUMER_GROUP", "webhook-consumer-java");
        String topics = env.getOrDefault("WEBHOOK_CONSUMER_TOPICS", "^webhooks\\..*");
        int dedupSize = number("WEBHOOK_CONSUMER_DEDUP_SIZE", env.getOrDefault("WEBHOOK_CONSUMER_DEDUP_SIZE", "10000"));
        Properties props = new Properties();
        for (int i = 0; i < args.length; i++) {
            String value = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--brokers" -> brokers = value;
                case "--group" -> group = value;
                case "--topics" -> topics = value;
                case "--dedup-size" -> dedupSize = number("--dedup-size", value);
                case "-X" -> {
                    String[] kv = value == null ? new String[0] : value.split("=", 2);
                    if (kv.length != 2) {
                        usage("-X " + value + ": expected NAME=VALUE");
                    }
                    props.setProperty(kv[0], kv[1]);
                }
                default -> usage("unknown option " + args[i]);
            }
            if (value == null) {
                usage(args[i] + ": needs a value");
            }
            i++;
        }
        if (dedupSize < 0) {
            usage("--dedup-size: must be >= 0");
        }
        int status = run(brokers, group, topics, dedupSize, props);
        if (status != 0) {
            System.exit(status); // on SIGTERM the JVM is exiting already: return, never call exit
        }
    }

    static int number(String what, String text) {
        try {
            return Integer.parseInt(String.valueOf(text));
        } catch (NumberFormatException e) {
            usage(what + ": not a number: " + text);
            return -1;
        }
    }

    static void usage(String problem) {
        System.err.println("consumer: " + problem + "\nusage: webhook-consumer [--brokers B]"
                + " [--group G] [--topics T] [--dedup-size N] [-X name=value]...");
        System.exit(2);
    }

    static int run(String brokers, String group, String topics, int dedupSize, Properties extra) {
        Properties p = new Properties();
        p.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.setProperty(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.setProperty(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"); // a new service starts at the oldest
        p.setProperty(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"); // commitSync after handling
        p.setProperty(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "60000"); // new topics within a minute
        p.setProperty(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.setProperty(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, SafeDeserializer.class.getName());
        p.putAll(extra);

        WebhookConsumer service = new WebhookConsumer(dedupSize);
        Map<TopicPartition, OffsetAndMetadata> done = new HashMap<>();
        Thread main = Thread.currentThread();
        int status = 0;
        try (KafkaConsumer<String, Decoded> consumer = new KafkaConsumer<>(p)) {
            // SIGTERM: wake the loop up, and let it commit and close before the JVM goes
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                consumer.wakeup();
                try {
                    main.join(30_000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
            ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    consumer.commitSync(done); // what was handled, before another member takes over
                    done.clear();
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    log("group " + p.getProperty("group.id") + ": assigned " + partitions.size()
                            + " partition(s)");
                }
            };
            if (topics.startsWith("^")) {
                consumer.subscribe(Pattern.compile(topics), listener);
            } else {
                consumer.subscribe(Arrays.asList(topics.split(",")), listener);
            }
            log("group " + group + ", topics " + topics + ", brokers " + brokers);
            try {
                while (true) {
                    for (ConsumerRecord<String, Decoded> record : consumer.poll(Duration.ofMillis(500))) {
                        service.process(record);
                        done.put(new TopicPartition(record.topic(), record.partition()),
                                new OffsetAndMetadata(record.offset() + 1));
                    }
                    if (!done.isEmpty()) {
                        consumer.commitSync(done);
                        done.clear();
                    }
                }
            } catch (WakeupException e) {
                // SIGTERM
            } finally {
                if (!done.isEmpty()) {
                    consumer.commitSync(done);
                }
            } // close() leaves the group
        } catch (Exception e) {
            log(e.toString());
            status = 1;
        }
        log("left group " + group + " after " + service.handled + " record(s)");
        return status;
    }
}
