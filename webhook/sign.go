package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

const secretPrefix = "whsec_"

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

// Sign returns the Standard Webhooks signature header value for a
// delivery: "v1,<base64 HMAC-SHA256 of id.timestamp.body>" for each
// secret, separated by spaces. The bridge signs with the delivery's
// webhook-id, [MessageID] of the event's ID. A secret that is not
// "whsec_" (optional) and the base64 of 24 to 64 bytes is an error.
func Sign(secrets []string, id string, timestamp int64, body []byte) (string, error) {
	keys := make([][]byte, 0, len(secrets))
	for _, s := range secrets {
		k, err := decodeSecret(s)
		if err != nil {
			return "", err
		}
		keys = append(keys, k)
	}
	return signKeys(keys, id, timestamp, body), nil
}

func signKeys(keys [][]byte, id string, timestamp int64, body []byte) string {
	macs := make([]hash.Hash, len(keys))
	for i, k := range keys {
		macs[i] = hmac.New(sha256.New, k)
	}
	return signMACs(macs, id, timestamp, body)
}

// macPool returns a pool of HMAC-SHA256 states keyed with key. Each new
// state is a clone of one keyed state, so that a pool emptied by the
// garbage collector refills without working out the key's padded blocks
// again: with thousands of subscriptions most pools are cold.
func macPool(key []byte) *sync.Pool {
	base := hmac.New(sha256.New, key)
	base.Reset() // keeps the keyed state, which clones share
	return &sync.Pool{New: func() any {
		if c, ok := base.(hash.Cloner); ok {
			if m, err := c.Clone(); err == nil {
				return m
			}
		}
		return hmac.New(sha256.New, key)
	}}
}

// signWith signs with HMAC states taken from pools, one per key.
func signWith(pools []*sync.Pool, id string, timestamp int64, body []byte) string {
	macs := make([]hash.Hash, len(pools))
	for i, p := range pools {
		macs[i] = p.Get().(hash.Hash)
		macs[i].Reset()
	}
	sig := signMACs(macs, id, timestamp, body)
	for i, p := range pools {
		p.Put(macs[i])
	}
	return sig
}

func signMACs(macs []hash.Hash, id string, timestamp int64, body []byte) string {
	var scratch [64]byte
	out := make([]byte, 0, len(macs)*48)
	for i, mac := range macs {
		mac.Write([]byte(id))
		mac.Write(strconv.AppendInt(append(scratch[:0], '.'), timestamp, 10))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, "v1,"...)
		out = base64.StdEncoding.AppendEncode(out, mac.Sum(scratch[:0]))
	}
	return string(out)
}

// Verify reports whether signatureHeader holds a valid v1 signature of
// id.timestamp.body by secret, for receivers written in Go. It does not
// check the timestamp's age; receivers should refuse old ones. id is the
// webhook-id header as received; a secret outside 24 to 64 bytes never
// verifies.
func Verify(secret, id string, timestamp int64, body []byte, signatureHeader string) bool {
	key, err := decodeSecret(secret)
	if err != nil {
		return false
	}
	want := signKeys([][]byte{key}, id, timestamp, body)
	for _, sig := range strings.Fields(signatureHeader) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
