"""secured.py - the secured Kafka node of tests/secured/ (kraft.SecureCluster:
SASL_SSL SCRAM-SHA-512/256, SASL_SSL PLAIN, SSL with client certificates, a
listener whose certificate names another host; StandardAuthorizer) with the
users, topics and ACLs the tests expect, and the bridge configured for one of
its mechanisms through [librdkafka], as an operator would: the settings in the
file, the password in the environment (BRIDGE_RDKAFKA_SASL_PASSWORD).

  start_cluster() -> kraft.SecureCluster   ready, topics made, ACLs set
  bridge_settings(cluster, mechanism, **kw) -> (brokers, ini text, env)
  MECHANISMS  ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "MTLS")
  PASSWORD    the bridge user's password (asserted absent from every output)

ACLs of User:bridge (the principal of every mechanism: the SCRAM/PLAIN user,
or the CN of its client certificate), those of deploy/k8s/strimzi/kafka-user.yaml
(there the dead-letter topic is one literal name; here each test has its own):
  ALLOW Write, Describe, DescribeConfigs on topics prefixed "webhooks."
  ALLOW Read on topics prefixed "webhooks.deadletter" (replay, deadletters)
  DENY  Write on topics prefixed "webhooks.shoperti.locked"   (LOCKED)
  DENY  All on topics prefixed "webhooks.shoperti.hidden"     (HIDDEN)
  ALLOW Read on groups prefixed "webhook-bridge-replay" (replay, deadletters)
  ALLOW DescribeConfigs on the cluster (the registry reads the brokers'
        auto.create.topics.enable: an unknown topic is then known missing at
        its first answer, not after three)
"""
import concurrent.futures
import secrets
import time

import kraft

MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "MTLS")
PASSWORD = "br-" + secrets.token_hex(12)  # unique: searched for in every output
SERVICE_PASSWORD = "svc-" + secrets.token_hex(12)
TOPICS = ["webhooks.piriod.payment.created", "webhooks.shoperti.orders.created",
          "webhooks.bonifiq.point.add", "webhooks.deadletter"]
LOCKED = "webhooks.shoperti.locked.created"  # Describe allowed, Write denied
HIDDEN = "webhooks.shoperti.hidden.created"  # everything denied
REPLAY_GROUP = "webhook-bridge-replay"


def start_cluster(extra_topics=()):
    """The node with its topics (3 partitions, one replica) and ACLs."""
    kraft.require()
    t = time.monotonic()
    c = kraft.SecureCluster(users={"bridge": PASSWORD, "service": SERVICE_PASSWORD})
    try:
        c.start()
        c.wait_ready()
        c.create_topics([*TOPICS, LOCKED, HIDDEN, *extra_topics])
        acls = [dict(operations=["Write", "Describe", "DescribeConfigs"], topic="webhooks.",
                     prefixed=True),
                dict(operations=["Read"], topic="webhooks.deadletter", prefixed=True),
                dict(operations=["Write"], topic="webhooks.shoperti.locked", prefixed=True,
                     deny=True),
                dict(operations=["All"], topic="webhooks.shoperti.hidden", prefixed=True,
                     deny=True),
                dict(operations=["Read"], group=REPLAY_GROUP, prefixed=True),
                dict(operations=["DescribeConfigs"], cluster=True)]
        with concurrent.futures.ThreadPoolExecutor(len(acls)) as pool:  # a JVM each
            for f in [pool.submit(c.acl, "User:bridge", **a) for a in acls]:
                f.result()
    except BaseException:
        c.stop()
        raise
    print(f"secured Kafka node: ready with topics and ACLs in {time.monotonic() - t:.1f} s")
    return c


def bridge_settings(cluster, mechanism, user="bridge", password=None, ca=None, cert=None,
                    kafka=None, env=None):
    """(brokers, bridge.ini, environment) for the bridge on cluster's listener of
    mechanism (also WRONGHOST); kafka: more [kafka] settings."""
    conf = cluster.client_config(mechanism, user=user,
                                 password=PASSWORD if password is None else password,
                                 ca=ca, cert=cert)
    brokers = conf.pop("bootstrap.servers")
    secret = conf.pop("sasl.password", None)
    ini = ("[kafka]\n" + f"brokers = {brokers}\n"
           + "".join(f"{k} = {v}\n" for k, v in (kafka or {}).items())
           + "[librdkafka]\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
    e = {"BRIDGE_RDKAFKA_SASL_PASSWORD": secret} if secret is not None else {}
    e.update(env or {})
    return brokers, ini, e


def secret_free(*texts):
    """The bridge user's password in none of texts."""
    for text in texts:
        assert PASSWORD not in text, "the password is in an output:\n" + text[-3000:]
