package webhookhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// A program that runs a bridge mounts its HTTP API beside its own routes.
func Example() {
	broker := memory.NewBroker(memory.Options{})
	defer broker.Close()
	sub, _ := broker.NewSubscriber(memory.SubscriberConfig{Group: "webhooks"})
	defer sub.Close()
	bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker})
	if err != nil {
		panic(err)
	}
	defer bridge.Close()
	api, err := webhookhttp.New(webhookhttp.Config{Bridge: bridge, Publisher: broker})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(body string) {
		resp, err := http.Post(srv.URL+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		fmt.Print(resp.StatusCode, " ", string(answer))
	}
	post(`{"name": "order.created", "id": "order-1", "payload": {"total": 120}}`)
	post(`{"name": "order.created", "id": "order-1", "payload": {"total": 120}}`)
	post(`{"name": "order.created", "id": "order.1", "payload": {}}`)
	// Output:
	// 202 {"ids":["order-1"],"duplicates":[]}
	// 200 {"ids":["order-1"],"duplicates":["order-1"]}
	// 400 {"error":"id \"order.1\": byte 5 is '.': an id is made of ASCII letters, digits, '-' and '_'","status":400}
}
