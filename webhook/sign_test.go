package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/webhook"
)

// The Standard Webhooks specification's published test vector.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheSpecVector(t *testing.T) {
	got, err := webhook.Sign([]string{vectorSecret}, vectorID, vectorTimestamp, []byte(vectorPayload))
	if err != nil {
		t.Fatal(err)
	}
	if got != vectorSignature {
		t.Errorf("Sign = %s, want %s", got, vectorSignature)
	}
	if !webhook.Verify(vectorSecret, vectorID, vectorTimestamp, []byte(vectorPayload), "v1,bogus "+vectorSignature) {
		t.Error("Verify refused the spec's signature among others")
	}
	if webhook.Verify(vectorSecret, vectorID, vectorTimestamp, []byte(vectorPayload+" "), vectorSignature) {
		t.Error("Verify accepted a changed body")
	}
}

func TestSignWithRotatedSecrets(t *testing.T) {
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret of 32 bytes......"))
	got, err := webhook.Sign([]string{vectorSecret, other}, vectorID, vectorTimestamp, []byte(vectorPayload))
	if err != nil {
		t.Fatal(err)
	}
	sigs := strings.Fields(got)
	if len(sigs) != 2 || sigs[0] != vectorSignature || !verifyIndependently(other, vectorID, fmt.Sprint(vectorTimestamp), []byte(vectorPayload), got) {
		t.Errorf("Sign with two secrets = %q", got)
	}
	for _, bad := range []string{"whsec_not base64!", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := webhook.Sign([]string{bad}, "id", 1, nil); err == nil {
			t.Errorf("Sign with secret %q succeeded", bad)
		}
	}
}

// verifyIndependently is the specification's algorithm, written here
// apart from the package's signer: HMAC-SHA256 over "id.timestamp.body"
// with the base64-decoded secret, compared with each "v1," entry.
func verifyIndependently(secret, id, timestamp string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, part := range strings.Fields(header) {
		version, sig, ok := strings.Cut(part, ",")
		if ok && version == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
