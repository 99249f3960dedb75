package webhook

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The prefixes Standard Webhooks gives its keys: a symmetric secret
// (signatures "v1,"), an ed25519 private key and its public key
// (signatures "v1a,").
const (
	secretPrefix     = "whsec_"
	privateKeyPrefix = "whsk_"
	publicKeyPrefix  = "whpk_"
)

// The bounds Standard Webhooks sets on a secret's decoded length, in
// bytes.
const (
	minSecretLen = 24
	maxSecretLen = 64
)

// decodeSecret returns the key bytes of a Standard Webhooks secret:
// base64 after an optional "whsec_" prefix, 24 to 64 bytes once decoded.
func decodeSecret(secret string) ([]byte, error) {
	raw := strings.TrimPrefix(secret, secretPrefix)
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New(`not a Standard Webhooks secret ("whsec_" followed by base64)`)
	}
	if len(key) < minSecretLen || len(key) > maxSecretLen {
		return nil, fmt.Errorf("%d bytes once decoded; a Standard Webhooks secret is %d to %d bytes (use %d random bytes or more)",
			len(key), minSecretLen, maxSecretLen, minSecretLen)
	}
	return key, nil
}

// decodePrivateKey returns the ed25519 private key of a "whsk_" key: the
// base64 of the 32-byte seed (what [NewSigningKey] writes, and RFC 8032
// calls the private key), or of the 64 bytes of the seed followed by its
// public key (Go's ed25519.PrivateKey, libsodium's and stablelib's secret
// key), whose second half must be the seed's public key.
func decodePrivateKey(secret string) (ed25519.PrivateKey, error) {
	raw, ok := strings.CutPrefix(secret, privateKeyPrefix)
	if !ok {
		return nil, errors.New(`not an ed25519 private key ("whsk_" followed by base64)`)
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New(`"whsk_" key: not valid base64 after the prefix`)
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if !bytes.Equal(k[ed25519.SeedSize:], b[ed25519.SeedSize:]) {
			return nil, errors.New(`"whsk_" key of 64 bytes: its last 32 bytes are not the public key of its first 32 (the seed)`)
		}
		return k, nil
	}
	return nil, fmt.Errorf(`"whsk_" key: %d bytes once decoded; an ed25519 private key is the %d-byte seed (or %d bytes: the seed and its public key)`,
		len(b), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// decodePublicKey returns the ed25519 public key of a "whpk_" key.
func decodePublicKey(key string) (ed25519.PublicKey, error) {
	raw, ok := strings.CutPrefix(key, publicKeyPrefix)
	if !ok {
		return nil, errors.New(`not an ed25519 public key ("whpk_" followed by base64)`)
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New(`"whpk_" key: not valid base64 after the prefix`)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf(`"whpk_" key: %d bytes once decoded; an ed25519 public key is %d`, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// signer is one signing secret, decoded once: pooled HMAC-SHA256 states
// for a "whsec_" secret, or the ed25519 private key of a "whsk_" one.
type signer struct {
	macs *macCache          // reusable HMAC-SHA256 states; nil for ed25519
	priv ed25519.PrivateKey // nil for HMAC
}

// parseSigner decodes a signing secret: "whsk_" (ed25519, "v1a"
// signatures) or "whsec_" (HMAC-SHA256, "v1"; the prefix is optional).
// A "whpk_" public key is refused: it cannot sign.
func parseSigner(secret string) (signer, error) {
	switch {
	case strings.HasPrefix(secret, privateKeyPrefix):
		k, err := decodePrivateKey(secret)
		if err != nil {
			return signer{}, err
		}
		return signer{priv: k}, nil
	case strings.HasPrefix(secret, publicKeyPrefix):
		return signer{}, errors.New(`a "whpk_" public key cannot sign: give the "whsk_" private key here, and the "whpk_" public key to the receiver`)
	}
	k, err := decodeSecret(secret)
	if err != nil {
		return signer{}, err
	}
	return signer{macs: newMACCache(k)}, nil
}

// checkSecret reports what is wrong with a signing secret, or nil.
func checkSecret(secret string) error {
	_, err := parseSigner(secret)
	return err
}

// NewSigningKey returns a new ed25519 key pair in the Standard Webhooks
// forms: the private key "whsk_" and the base64 of its 32-byte seed, a
// subscription's secret that signs with "v1a"; and the public key
// "whpk_" and the base64 of its 32 bytes, which receivers verify with.
func NewSigningKey() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return privateKeyPrefix + base64.StdEncoding.EncodeToString(priv.Seed()),
		publicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

// PublicKey returns the "whpk_" public key of a "whsk_" private key, for
// receivers; a secret of any other kind is an error.
func PublicKey(secret string) (string, error) {
	k, err := decodePrivateKey(secret)
	if err != nil {
		return "", err
	}
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)), nil
}

// IsPrivateKey reports whether secret is an ed25519 private key by its
// prefix ("whsk_"), valid or not.
func IsPrivateKey(secret string) bool { return strings.HasPrefix(secret, privateKeyPrefix) }

// IsPublicKey reports whether key is an ed25519 public key by its prefix
// ("whpk_"), valid or not.
func IsPublicKey(key string) bool { return strings.HasPrefix(key, publicKeyPrefix) }

// Sign returns the Standard Webhooks signature header value for a
// delivery: one entry per secret, separated by spaces, each over
// "id.timestamp.body": "v1,<base64 HMAC-SHA256>" for a "whsec_" secret
// (the prefix is optional; 24 to 64 bytes), "v1a,<base64 ed25519
// signature>" for a "whsk_" private key. The bridge signs with the
// delivery's webhook-id, [MessageID] of the event's ID. A secret of
// neither form, or a "whpk_" public key, is an error.
func Sign(secrets []string, id string, timestamp int64, body []byte) (string, error) {
	signers := make([]signer, 0, len(secrets))
	for _, s := range secrets {
		sg, err := parseSigner(s)
		if err != nil {
			return "", err
		}
		signers = append(signers, sg)
	}
	return signWith(signers, id, timestamp, body), nil
}

// macCache holds reusable HMAC-SHA256 states keyed with one key. A
// subscription among thousands is used now and then, and a sync.Pool of
// its own would be emptied by most garbage collections in between (and
// rebuild its per-P slots each time); so one idle state stays in a slot
// of the subscription's own, and the pool takes only the states of
// deliveries sent at once. New states are clones of a keyed one, so that
// the key's padded blocks are worked out once.
type macCache struct {
	idle atomic.Pointer[pooledMAC]
	pool sync.Pool
}

// pooledMAC is one HMAC-SHA256 state of a macCache.
type pooledMAC struct{ hash.Hash }

func newMACCache(key []byte) *macCache {
	base := hmac.New(sha256.New, key)
	base.Reset() // keeps the keyed state, which clones share
	c := &macCache{}
	c.pool.New = func() any {
		if cl, ok := base.(hash.Cloner); ok {
			if m, err := cl.Clone(); err == nil {
				return &pooledMAC{m}
			}
		}
		return &pooledMAC{hmac.New(sha256.New, key)}
	}
	return c
}

// get returns a state, reset.
func (c *macCache) get() *pooledMAC {
	m := c.idle.Swap(nil)
	if m == nil {
		m = c.pool.Get().(*pooledMAC)
	}
	m.Reset()
	return m
}

// put gives back a state get returned.
func (c *macCache) put(m *pooledMAC) {
	if !c.idle.CompareAndSwap(nil, m) {
		c.pool.Put(m)
	}
}

// contentPool holds buffers for the signed content, which ed25519 takes
// whole.
var contentPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledContent is the largest buffer contentPool keeps.
const maxPooledContent = 64 << 10

// signWith signs once with each signer: HMAC states taken from their
// pools, ed25519 keys decoded when the subscription was compiled (Go
// caches each key's expanded form by its address, so reusing the same
// ed25519.PrivateKey skips that work on every delivery).
func signWith(signers []signer, id string, timestamp int64, body []byte) string {
	// head is "id.timestamp.", with room after it for an HMAC sum: one
	// allocation for every key.
	head := make([]byte, 0, len(id)+22+sha256.Size)
	head = append(head, id...)
	head = append(head, '.')
	head = strconv.AppendInt(head, timestamp, 10)
	head = append(head, '.')
	var content *[]byte // head and body, built once for every ed25519 key
	out := make([]byte, 0, len(signers)*92)
	for i, sg := range signers {
		if i > 0 {
			out = append(out, ' ')
		}
		if sg.priv != nil {
			if content == nil {
				content = contentPool.Get().(*[]byte)
				*content = append(append((*content)[:0], head...), body...)
			}
			out = append(out, "v1a,"...)
			out = base64.StdEncoding.AppendEncode(out, ed25519.Sign(sg.priv, *content))
			continue
		}
		mac := sg.macs.get()
		mac.Write(head)
		mac.Write(body)
		out = append(out, "v1,"...)
		out = base64.StdEncoding.AppendEncode(out, mac.Sum(head[len(head):]))
		sg.macs.put(mac)
	}
	if content != nil && cap(*content) <= maxPooledContent {
		contentPool.Put(content)
	}
	return string(out)
}

// Verify reports whether signatureHeader holds a valid signature of
// id.timestamp.body, for receivers written in Go. key is what the
// receiver holds: a "whsec_" secret checks the "v1" entries; a "whpk_"
// public key (or the "whsk_" private key it belongs to) checks the "v1a"
// entries. It does not check the timestamp's age; receivers should
// refuse old ones. id is the webhook-id header as received; a key that
// does not decode never verifies.
func Verify(key, id string, timestamp int64, body []byte, signatureHeader string) bool {
	var pub ed25519.PublicKey
	switch {
	case strings.HasPrefix(key, publicKeyPrefix):
		p, err := decodePublicKey(key)
		if err != nil {
			return false
		}
		pub = p
	case strings.HasPrefix(key, privateKeyPrefix):
		k, err := decodePrivateKey(key)
		if err != nil {
			return false
		}
		pub = k.Public().(ed25519.PublicKey)
	default:
		sg, err := parseSigner(key)
		if err != nil {
			return false
		}
		want := signWith([]signer{sg}, id, timestamp, body)
		for _, sig := range strings.Fields(signatureHeader) {
			if hmac.Equal([]byte(sig), []byte(want)) {
				return true
			}
		}
		return false
	}
	content := []byte(id + "." + strconv.FormatInt(timestamp, 10) + ".")
	content = append(content, body...)
	for _, entry := range strings.Fields(signatureHeader) {
		b64, ok := strings.CutPrefix(entry, "v1a,")
		if !ok {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, content, sig) {
			return true
		}
	}
	return false
}
