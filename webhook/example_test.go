package webhook_test

import (
	"fmt"

	"github.com/switchyard-go/switchyard/webhook"
)

// Signing a delivery, with the Standard Webhooks specification's own test
// vector, and checking it as a receiver would.
func ExampleSign() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	sig, err := webhook.Sign([]string{secret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
	if err != nil {
		panic(err)
	}
	fmt.Println(sig)
	fmt.Println(webhook.Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, sig))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// true
}

// Filters are checked when subscriptions are set; one that does not
// compile is refused with the subscription's id.
func ExampleCompile() {
	err := webhook.Compile(webhook.Subscription{
		ID: "billing", Topic: "order.created", URL: "https://billing.internal/hooks",
		Filter: `data["body"]["total"] > 100 and`,
	})
	fmt.Println(err)
	// Output:
	// webhook: subscription "billing": filter: unexpected token EOF (line 1, column 31)
}
