package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redact"
	"github.com/switchyard-go/switchyard/webhook"
)

// RedisConfig is the redis section of the config: at most one of URL,
// ClusterURL and SentinelURL, each read by go-redis's own parser for that
// topology; none means the in-memory backend.
type RedisConfig struct {
	// URL is one Redis server, read by goredis.ParseURL:
	// redis://[[user]:password@]host:port[/db][?option=value...], or
	// rediss:// for TLS. default: none
	URL string `yaml:"url"`
	// ClusterURL is a Redis Cluster, read by goredis.ParseClusterURL:
	// redis://[[user]:password@]host:port?addr=host2:port2&addr=..., one
	// or more seed nodes, rediss:// for TLS. default: none
	ClusterURL string `yaml:"cluster_url"`
	// SentinelURL is a primary managed by Sentinel, read by
	// goredis.ParseFailoverURL:
	// redis://[[user]:password@]sentinel:port[/db]?master_name=NAME&addr=sentinel2:port&username=U&password=P.
	// The user info authenticates to the sentinels, the username and
	// password parameters to the primary. default: none
	SentinelURL string `yaml:"sentinel_url"`
	// TLS completes the TLS that a rediss:// URL turns on.
	TLS RedisTLS `yaml:"tls"`
	// WaitReplicas makes every event the bridge writes wait until this
	// many replicas acknowledged it before POST /v1/events answers 202
	// (or a retry is taken as scheduled), so that a failover loses none of
	// them. Not with cluster_url. default: 0, no wait
	WaitReplicas int `yaml:"wait_replicas"`
	// WaitTimeout bounds that wait; past it the POST answers 503.
	// default: 1s
	WaitTimeout webhook.Duration `yaml:"wait_timeout"`
}

// RedisTLS is the TLS of the connections to Redis beyond what rediss://
// gives (the system's CAs, the host name of each address dialled).
type RedisTLS struct {
	// CAFile is a PEM file of the CAs that sign the servers'
	// certificates, instead of the system's. default: none
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers with tls-auth-clients; both or neither. default: none
	CertFile string `yaml:"cert_file"`
	// KeyFile is the key of CertFile. default: none
	KeyFile string `yaml:"key_file"`
	// ServerName is the name every server's certificate must hold.
	// default: the host of the address dialled
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: the connection is
	// encrypted, but to whoever answers. default: false
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// The config keys of the three topologies.
const (
	keyRedisURL    = "redis.url"
	keyClusterURL  = "redis.cluster_url"
	keySentinelURL = "redis.sentinel_url"
)

// redisForms says, for an error, what each key wants.
var redisForms = map[string]string{
	keyRedisURL:    "redis://[[user]:password@]host:port[/db] or rediss://…",
	keyClusterURL:  "redis://[[user]:password@]host:port?addr=host2:port2&addr=host3:port3 or rediss://…",
	keySentinelURL: "redis://[[user]:password@]sentinel:port[/db]?master_name=NAME&addr=sentinel2:port&username=USER&password=PASSWORD or rediss://…",
}

// onRedis reports whether the config names a Redis.
func (c *Config) onRedis() bool {
	key, _ := c.redisKey()
	return key != ""
}

// redisKey returns the first topology key set and its URL, or "".
func (c *Config) redisKey() (key, raw string) {
	for _, kv := range [][2]string{{keyRedisURL, c.Redis.URL}, {keyClusterURL, c.Redis.ClusterURL}, {keySentinelURL, c.Redis.SentinelURL}} {
		if kv[1] != "" {
			return kv[0], kv[1]
		}
	}
	return "", ""
}

// redisTopology names the topology for the start log: single, cluster or
// sentinel.
func (c *Config) redisTopology() string {
	switch key, _ := c.redisKey(); key {
	case keyClusterURL:
		return "cluster"
	case keySentinelURL:
		return "sentinel"
	}
	return "single"
}

// redisShown is the configured URL for logs and errors, passwords hidden.
func (c *Config) redisShown() string {
	_, raw := c.redisKey()
	return redact.URL(raw)
}

// redisSetup is a parsed redis section: the options of exactly one of
// the three clients.
type redisSetup struct {
	key      string
	single   *goredis.Options
	cluster  *goredis.ClusterOptions
	failover *goredis.FailoverOptions
}

// client makes the client of the topology.
func (s *redisSetup) client() goredis.UniversalClient {
	switch {
	case s.cluster != nil:
		return goredis.NewClusterClient(s.cluster)
	case s.failover != nil:
		return goredis.NewFailoverClient(s.failover)
	}
	return goredis.NewClient(s.single)
}

// tlsConfig returns the TLS config of the client, nil without TLS.
func (s *redisSetup) tlsConfig() *tls.Config {
	switch {
	case s.cluster != nil:
		return s.cluster.TLSConfig
	case s.failover != nil:
		return s.failover.TLSConfig
	}
	return s.single.TLSConfig
}

// parseRedis reads the redis section: exactly one topology key, parsed by
// go-redis, and the TLS files. Its errors name the key and never hold a
// password. With no key set it returns nil.
func (c *Config) parseRedis() (*redisSetup, error) {
	var set []string
	for _, kv := range [][2]string{{keyRedisURL, c.Redis.URL}, {keyClusterURL, c.Redis.ClusterURL}, {keySentinelURL, c.Redis.SentinelURL}} {
		if kv[1] != "" {
			set = append(set, kv[0])
		}
	}
	if len(set) > 1 {
		return nil, fmt.Errorf("config: %s and %s are both set: want one of redis.url (one server), redis.cluster_url (a Cluster) or redis.sentinel_url (a primary managed by Sentinel)", set[0], set[1])
	}
	if c.Redis.WaitReplicas < 0 {
		return nil, errors.New("config: redis.wait_replicas is negative")
	}
	if c.Redis.WaitTimeout < 0 {
		return nil, errors.New("config: redis.wait_timeout is negative")
	}
	if len(set) == 0 {
		if f := c.Redis.TLS.firstSet(); f != "" {
			return nil, fmt.Errorf("config: %s is set without redis.url, redis.cluster_url or redis.sentinel_url", f)
		}
		if c.Redis.WaitReplicas > 0 {
			return nil, errors.New("config: redis.wait_replicas is set without redis.url or redis.sentinel_url")
		}
		return nil, nil
	}
	key, raw := c.redisKey()
	s := &redisSetup{key: key}
	var err error
	var tlsCfg **tls.Config
	switch key {
	case keyRedisURL:
		if s.single, err = goredis.ParseURL(raw); err == nil {
			tlsCfg = &s.single.TLSConfig
		}
	case keyClusterURL:
		if s.cluster, err = goredis.ParseClusterURL(raw); err == nil {
			tlsCfg = &s.cluster.TLSConfig
		}
	case keySentinelURL:
		if s.failover, err = goredis.ParseFailoverURL(raw); err == nil {
			tlsCfg = &s.failover.TLSConfig
			if s.failover.MasterName == "" {
				err = errors.New("master_name is missing: the sentinels know the primary by that name")
			}
		}
	}
	if err != nil {
		return nil, redisURLError(key, raw, err)
	}
	if u, perr := url.Parse(raw); perr == nil && u.Query().Has("skip_verify") {
		return nil, fmt.Errorf("config: %s %s: skip_verify in the URL is refused: set redis.tls.insecure_skip_verify: true instead, if you mean it", key, redact.URL(raw))
	}
	if c.Redis.WaitReplicas > 0 && key == keyClusterURL {
		return nil, errors.New("config: redis.wait_replicas works with redis.url or redis.sentinel_url, not redis.cluster_url")
	}
	if err := c.Redis.TLS.apply(key, tlsCfg); err != nil {
		return nil, err
	}
	return s, nil
}

// firstSet names the first TLS key set, or "".
func (t RedisTLS) firstSet() string {
	switch {
	case t.CAFile != "":
		return "redis.tls.ca_file"
	case t.CertFile != "":
		return "redis.tls.cert_file"
	case t.KeyFile != "":
		return "redis.tls.key_file"
	case t.ServerName != "":
		return "redis.tls.server_name"
	case t.InsecureSkipVerify:
		return "redis.tls.insecure_skip_verify"
	}
	return ""
}

// apply completes *cfg, the TLS config go-redis's parser made for key (nil
// for redis://), with t. For a Cluster or through Sentinel, whose nodes
// have addresses of their own, each connection checks the host it dials
// unless server_name says otherwise (go-redis's parsers would hold every
// node to the seed's host name).
func (t RedisTLS) apply(key string, cfg **tls.Config) error {
	f := t.firstSet()
	if *cfg == nil {
		if f != "" {
			return fmt.Errorf("config: %s is set but %s is not rediss://: TLS is turned on by the rediss scheme", f, key)
		}
		return nil
	}
	c := (*cfg).Clone()
	c.MinVersion = tls.VersionTLS12
	if key != keyRedisURL {
		c.ServerName = ""
	}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.InsecureSkipVerify {
		if t.CAFile != "" || t.ServerName != "" {
			return errors.New("config: redis.tls.insecure_skip_verify is set with redis.tls.ca_file or redis.tls.server_name, which it would make pointless: keep one")
		}
		c.InsecureSkipVerify = true
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fmt.Errorf("config: redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("config: redis.tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("config: redis.tls.cert_file and redis.tls.key_file go together: set both or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("config: redis.tls.cert_file %s, redis.tls.key_file %s: %v", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	*cfg = c
	return nil
}

// redisURLError is go-redis's parse error for key's URL, on one line,
// without the password: url.Parse quotes the whole URL (so it is not
// shown), and a bad escape quotes a piece of it.
func redisURLError(key, raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("config: %s does not parse as a URL: want %s, the password percent-encoded", key, redisForms[key])
	}
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		var secrets []string
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
		secrets = append(secrets, u.Query()["password"]...)
		for _, s := range secrets {
			if s != "" {
				msg = strings.ReplaceAll(msg, s, "xxxxx")
			}
		}
	}
	return fmt.Errorf("config: %s %s: %s", key, redact.URL(raw), strings.ReplaceAll(msg, "\n", `\n`))
}

// redisWaitTimeout is redis.wait_timeout with its default.
func (c *Config) redisWaitTimeout() time.Duration {
	if c.Redis.WaitTimeout == 0 {
		return time.Second
	}
	return time.Duration(c.Redis.WaitTimeout)
}
