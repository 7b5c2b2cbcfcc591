// Command consumer is a consuming service for webhook-bridge's records, in Go:
// IBM/sarama reads them, the CloudEvents SDK's Kafka binding
// (github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2) decodes them.
//
//	go run . --brokers localhost:9092 --group billing-service
//
// What every service reading the bridge's topics gets right, here in one file:
//   - its own consumer group (the group id is the service's name);
//   - a subscription by pattern (^webhooks\..*): sarama subscribes to topic
//     names, so the pattern is matched against the cluster's topics, and the
//     subscription is renewed when a metadata refresh shows a new one;
//   - deduplication on the CloudEvents source + id (delivery is
//     at-least-once), in a bounded in-memory store: a real service keeps the
//     ids it applied in its database, under a unique key, in the transaction
//     of the effect;
//   - a record marked only once it was handled, and only marked offsets
//     committed (a crash replays records, never skips them);
//   - dead letters (type <provider>.deadletter) told apart from events;
//   - SIGTERM: finish the record in hand, commit, leave the group, exit 0.
//
// It prints one JSON line per record on stdout ("kind": event, duplicate,
// deadletter or invalid, then where it was and what it holds); diagnostics go
// to stderr. Replace handleEvent and handleDeadLetter with your own logic.
package main

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
)

var deadLetter = regexp.MustCompile(`^[a-z0-9]+\.deadletter$`)

// seenEvents remembers the last capacity (source, id) pairs; the least
// recently seen is forgotten first.
type seenEvents struct {
	capacity int
	order    *list.List // front = most recent
	index    map[[2]string]*list.Element
}

func newSeenEvents(capacity int) *seenEvents {
	return &seenEvents{capacity: capacity, order: list.New(), index: map[[2]string]*list.Element{}}
}

// seenBefore records the pair and tells whether it was already there.
func (s *seenEvents) seenBefore(source, id string) bool {
	if s.capacity == 0 {
		return false
	}
	key := [2]string{source, id}
	if e, ok := s.index[key]; ok {
		s.order.MoveToFront(e)
		return true
	}
	s.index[key] = s.order.PushFront(key)
	if s.order.Len() > s.capacity {
		oldest := s.order.Back()
		s.order.Remove(oldest)
		delete(s.index, oldest.Value.([2]string))
	}
	return false
}

// line is what the service prints for each record.
type line struct {
	Kind             string          `json:"kind"`
	Topic            string          `json:"topic"`
	Partition        int32           `json:"partition"`
	Offset           int64           `json:"offset"`
	Key              *string         `json:"key,omitempty"`
	ID               string          `json:"id,omitempty"`
	Source           string          `json:"source,omitempty"`
	Type             string          `json:"type,omitempty"`
	Subject          *string         `json:"subject,omitempty"`
	Time             string          `json:"time,omitempty"`
	Provider         any             `json:"provider,omitempty"`
	ProviderEvent    any             `json:"providerevent,omitempty"`
	ReceivedAt       any             `json:"receivedat,omitempty"`
	DeadLetterReason any             `json:"deadletterreason,omitempty"`
	Data             json.RawMessage `json:"data,omitempty"`
	Reason           string          `json:"reason,omitempty"`
}

func emit(l line) {
	b, err := json.Marshal(l)
	if err != nil {
		log.Printf("consumer: %v", err)
		return
	}
	os.Stdout.Write(append(b, '\n'))
}

func describe(kind string, msg *sarama.ConsumerMessage, ev *event.Event) line {
	l := line{Kind: kind, Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
		ID: ev.ID(), Source: ev.Source(), Type: ev.Type(), Time: ev.Time().Format(time.RFC3339Nano),
		Data: ev.Data()}
	if msg.Key != nil {
		k := string(msg.Key)
		l.Key = &k
	}
	if s := ev.Subject(); s != "" {
		l.Subject = &s
	}
	ext := ev.Extensions()
	l.Provider, l.ProviderEvent = ext["provider"], ext["providerevent"]
	l.ReceivedAt, l.DeadLetterReason = ext["receivedat"], ext["deadletterreason"]
	return l
}

func handleEvent(msg *sarama.ConsumerMessage, ev *event.Event) {
	emit(describe("event", msg, ev))
}

// handleDeadLetter: a body the bridge could not read as its provider's event:
// alert, park it, or fix the provider description and run `webhook-bridge replay`.
func handleDeadLetter(msg *sarama.ConsumerMessage, ev *event.Event) {
	emit(describe("deadletter", msg, ev))
}

// handler is the sarama.ConsumerGroupHandler: one ConsumeClaim per partition.
type handler struct {
	seen    *seenEvents // used by one goroutine at a time: see process
	records chan *record
	handled int
}

type record struct {
	msg  *sarama.ConsumerMessage
	done chan struct{}
}

func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	n := 0
	for _, parts := range sess.Claims() {
		n += len(parts)
	}
	log.Printf("consumer: group member %s: assigned %d partition(s)", sess.MemberID(), n)
	return nil
}

// Cleanup runs when the session ends (rebalance, SIGTERM): commit what was marked.
func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	return nil
}

// ConsumeClaim hands each record to process (one goroutine for all
// partitions, so the dedup store needs no lock) and marks it once handled.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			r := &record{msg: msg, done: make(chan struct{})}
			h.records <- r
			<-r.done
			sess.MarkMessage(msg, "") // handled: committed from here on
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (h *handler) process(ctx context.Context) {
	for {
		select {
		case r := <-h.records:
			h.handle(ctx, r.msg)
			h.handled++
			close(r.done)
		case <-ctx.Done():
			return
		}
	}
}

func (h *handler) handle(ctx context.Context, msg *sarama.ConsumerMessage) {
	ev, err := binding.ToEvent(ctx, kafka_sarama.NewMessageFromConsumerMessage(msg))
	if err == nil {
		err = ev.Validate()
	}
	if err != nil { // not a CloudEvent: report it and go on, never block the partition
		emit(line{Kind: "invalid", Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
			Reason: err.Error()})
		return
	}
	switch {
	case h.seen.seenBefore(ev.Source(), ev.ID()):
		emit(line{Kind: "duplicate", Topic: msg.Topic, Partition: msg.Partition,
			Offset: msg.Offset, ID: ev.ID(), Source: ev.Source(), Type: ev.Type()})
	case deadLetter.MatchString(ev.Type()):
		handleDeadLetter(msg, ev)
	default:
		handleEvent(msg, ev)
	}
}

// subscription is the topics to consume: names, or patterns starting with ^.
type subscription []string

func (s subscription) match(topics []string) ([]string, error) {
	var out []string
	for _, t := range s {
		if !strings.HasPrefix(t, "^") {
			out = append(out, t)
			continue
		}
		re, err := regexp.Compile(t)
		if err != nil {
			return nil, err
		}
		for _, name := range topics {
			if re.MatchString(name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// usage reports a bad option and exits 2, as the flag package does.
func usage(problem string) {
	log.Printf("consumer: %s", problem)
	flag.Usage()
	os.Exit(2)
}

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stderr)
	brokers := flag.String("brokers", env("WEBHOOK_CONSUMER_BROKERS", "localhost:9092"), "bootstrap brokers, comma-separated")
	group := flag.String("group", env("WEBHOOK_CONSUMER_GROUP", "webhook-consumer-go"), "consumer group: the service's name")
	topics := flag.String("topics", env("WEBHOOK_CONSUMER_TOPICS", `^webhooks\..*`), "comma-separated topics; one starting with ^ is a regular expression")
	dedupDefault, err := strconv.Atoi(env("WEBHOOK_CONSUMER_DEDUP_SIZE", "10000"))
	if err != nil {
		usage("WEBHOOK_CONSUMER_DEDUP_SIZE: not a number")
	}
	dedup := flag.Int("dedup-size", dedupDefault, "how many (source, id) pairs to remember; 0 turns deduplication off")
	refresh := flag.Duration("metadata-refresh", time.Minute, "how often to look for new topics")
	version := flag.String("kafka-version", env("WEBHOOK_CONSUMER_KAFKA_VERSION", "2.1.0"), "the protocol version sarama speaks (the oldest broker's)")
	var sec security
	flag.StringVar(&sec.protocol, "security-protocol", env("WEBHOOK_CONSUMER_SECURITY_PROTOCOL", "PLAINTEXT"), "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
	flag.StringVar(&sec.mechanism, "sasl-mechanism", env("WEBHOOK_CONSUMER_SASL_MECHANISM", "SCRAM-SHA-512"), "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (the password: WEBHOOK_CONSUMER_SASL_PASSWORD)")
	flag.StringVar(&sec.username, "sasl-username", env("WEBHOOK_CONSUMER_SASL_USERNAME", ""), "SASL user")
	flag.StringVar(&sec.caFile, "ssl-ca", env("WEBHOOK_CONSUMER_SSL_CA", ""), "PEM file of the CA that signed the brokers' certificates (default: the system's)")
	flag.StringVar(&sec.certFile, "ssl-cert", env("WEBHOOK_CONSUMER_SSL_CERT", ""), "PEM client certificate (mTLS)")
	flag.StringVar(&sec.keyFile, "ssl-key", env("WEBHOOK_CONSUMER_SSL_KEY", ""), "PEM key of --ssl-cert")
	flag.Parse()
	sec.password = os.Getenv("WEBHOOK_CONSUMER_SASL_PASSWORD")
	kafkaVersion, err := sarama.ParseKafkaVersion(*version)
	if err != nil {
		usage("--kafka-version: " + err.Error())
	}
	if *dedup < 0 {
		usage("--dedup-size: must be >= 0")
	}
	conf := sarama.NewConfig()
	if err := sec.apply(conf); err != nil {
		usage(err.Error())
	}
	os.Exit(run(conf, strings.Split(*brokers, ","), *group, subscription(strings.Split(*topics, ",")), *dedup, *refresh, kafkaVersion))
}

func run(conf *sarama.Config, brokers []string, group string, sub subscription, dedup int, refresh time.Duration, version sarama.KafkaVersion) int {
	conf.Version = version
	conf.ClientID = group
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest // a new service starts at the oldest event
	conf.Consumer.Offsets.AutoCommit.Enable = true      // commits marked offsets only
	conf.Consumer.Offsets.AutoCommit.Interval = time.Second
	conf.Metadata.RefreshFrequency = refresh
	conf.Consumer.Return.Errors = true

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	client, err := sarama.NewClient(brokers, conf)
	if err != nil {
		log.Printf("consumer: %v", err)
		return 1
	}
	defer client.Close()
	cg, err := sarama.NewConsumerGroupFromClient(group, client)
	if err != nil {
		log.Printf("consumer: %v", err)
		return 1
	}
	go func() {
		for err := range cg.Errors() {
			log.Printf("consumer: %v", err)
		}
	}()
	log.Printf("consumer: group %s, topics %s, brokers %s", group, strings.Join(sub, ","), strings.Join(brokers, ","))

	h := &handler{seen: newSeenEvents(dedup), records: make(chan *record)}
	processing, processed := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { h.process(processing); close(finished) }()

	status := 0
	for ctx.Err() == nil {
		if err := client.RefreshMetadata(); err != nil {
			log.Printf("consumer: metadata: %v", err)
		}
		names, err := client.Topics()
		if err == nil {
			names, err = sub.match(names)
		}
		if err != nil {
			log.Printf("consumer: %v", err)
			status = 1
			break
		}
		if len(names) == 0 { // nothing to read yet: look again later
			select {
			case <-ctx.Done():
			case <-time.After(refresh):
			}
			continue
		}
		// One session per set of topics: it ends at a rebalance, at SIGTERM,
		// or when a refresh finds the pattern matching other topics.
		session, endSession := context.WithCancel(ctx)
		go watchTopics(session, endSession, client, sub, names, refresh)
		err = cg.Consume(session, names, h)
		endSession()
		if err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			log.Printf("consumer: %v", err)
			time.Sleep(time.Second)
		}
	}
	// Close commits what was marked and leaves the group.
	if err := cg.Close(); err != nil {
		log.Printf("consumer: close: %v", err)
		status = 1
	}
	processed()
	<-finished
	log.Printf("consumer: left group %s after %d record(s)", group, h.handled)
	return status
}

// watchTopics ends the session when the pattern matches other topics than names.
func watchTopics(ctx context.Context, end context.CancelFunc, client sarama.Client, sub subscription, names []string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if client.RefreshMetadata() != nil {
				continue
			}
			now, err := client.Topics()
			if err != nil {
				continue
			}
			if now, err = sub.match(now); err == nil && !slices.Equal(now, names) {
				log.Printf("consumer: topics now %s", strings.Join(now, ","))
				end()
				return
			}
		}
	}
}
