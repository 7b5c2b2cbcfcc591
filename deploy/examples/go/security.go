// security.go: TLS and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) for the
// consumer, set as librdkafka and the Java client name them. sarama brings
// no SCRAM client of its own: scramClient below is RFC 5802's client side.
// The password comes only from the environment (WEBHOOK_CONSUMER_SASL_PASSWORD,
// e.g. from a Kubernetes Secret), never from an option: argv is visible to ps.
package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"strings"

	"github.com/IBM/sarama"
	"golang.org/x/crypto/pbkdf2"
)

type security struct {
	protocol, mechanism, username, password string
	caFile, certFile, keyFile               string
}

// apply sets conf.Net.TLS and conf.Net.SASL from s.
func (s security) apply(conf *sarama.Config) error {
	proto := strings.ToUpper(s.protocol)
	switch proto {
	case "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
	default:
		return fmt.Errorf("--security-protocol %q: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s.protocol)
	}
	if strings.HasSuffix(proto, "SSL") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.caFile != "" {
			pem, err := os.ReadFile(s.caFile)
			if err != nil {
				return fmt.Errorf("--ssl-ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--ssl-ca %s: no PEM certificate in it", s.caFile)
			}
		}
		if s.certFile != "" || s.keyFile != "" {
			cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
			if err != nil {
				return fmt.Errorf("--ssl-cert/--ssl-key: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		conf.Net.TLS.Enable = true
		conf.Net.TLS.Config = tc
	}
	if !strings.HasPrefix(proto, "SASL_") {
		return nil
	}
	conf.Net.SASL.Enable = true
	conf.Net.SASL.Handshake = true
	conf.Net.SASL.User = s.username
	conf.Net.SASL.Password = s.password
	switch strings.ToUpper(s.mechanism) {
	case "PLAIN":
		conf.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case "SCRAM-SHA-256":
		conf.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		conf.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
			return &scramClient{hash: sha256.New}
		}
	case "SCRAM-SHA-512":
		conf.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		conf.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
			return &scramClient{hash: sha512.New}
		}
	default:
		return fmt.Errorf("--sasl-mechanism %q: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.mechanism)
	}
	if s.username == "" || s.password == "" {
		return errors.New("SASL needs --sasl-username and WEBHOOK_CONSUMER_SASL_PASSWORD")
	}
	return nil
}

// scramClient is one SCRAM conversation (RFC 5802, no channel binding).
type scramClient struct {
	hash               func() hash.Hash
	user, password     string
	clientNonce, first string
	serverSignature    []byte
	step               int
	done               bool
}

func (c *scramClient) Begin(user, password, _ string) error {
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	c.user, c.password = user, password
	c.clientNonce = base64.RawStdEncoding.EncodeToString(nonce)
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
	c.first = "n=" + name + ",r=" + c.clientNonce
	return nil
}

func (c *scramClient) mac(key []byte, msg string) []byte {
	m := hmac.New(c.hash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (c *scramClient) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		return "n,," + c.first, nil
	case 2:
		attrs := map[string]string{}
		for _, kv := range strings.Split(challenge, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				attrs[k] = v
			}
		}
		nonce, salt64, iter64 := attrs["r"], attrs["s"], attrs["i"]
		salt, err := base64.StdEncoding.DecodeString(salt64)
		iter, err2 := strconv.Atoi(iter64)
		if err != nil || err2 != nil || iter < 1 || !strings.HasPrefix(nonce, c.clientNonce) {
			return "", errors.New("SCRAM: malformed server-first-message")
		}
		salted := pbkdf2.Key([]byte(c.password), salt, iter, c.hash().Size(), c.hash)
		clientKey := c.mac(salted, "Client Key")
		h := c.hash()
		h.Write(clientKey)
		storedKey := h.Sum(nil)
		final := "c=biws,r=" + nonce
		auth := c.first + "," + challenge + "," + final
		sig := c.mac(storedKey, auth)
		proof := make([]byte, len(clientKey))
		for i := range clientKey {
			proof[i] = clientKey[i] ^ sig[i]
		}
		c.serverSignature = c.mac(c.mac(salted, "Server Key"), auth)
		return final + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
	case 3:
		if e, ok := strings.CutPrefix(challenge, "e="); ok {
			return "", errors.New("SCRAM: the server refused: " + e)
		}
		v, ok := strings.CutPrefix(challenge, "v=")
		got, err := base64.StdEncoding.DecodeString(v)
		if !ok || err != nil || !hmac.Equal(got, c.serverSignature) {
			return "", errors.New("SCRAM: the server's signature does not match")
		}
		c.done = true
		return "", nil
	}
	return "", errors.New("SCRAM: unexpected step")
}

func (c *scramClient) Done() bool {
	return c.done
}
