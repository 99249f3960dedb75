package webhookui_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
	"github.com/switchyard-go/switchyard/webhook/webhookui"
)

// Mount the console beside the admin API, as webhook-bridge does.
func Example() {
	broker := memory.NewBroker(memory.Options{})
	defer broker.Close()
	sub, _ := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge"})
	defer sub.Close()
	bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker})
	if err != nil {
		log.Fatal(err)
	}
	defer bridge.Close()
	api, err := webhookhttp.New(webhookhttp.Config{Bridge: bridge, Publisher: broker, AdminToken: "s3cret"})
	if err != nil {
		log.Fatal(err)
	}
	console, err := webhookui.New(webhookui.Config{API: api, AdminToken: "s3cret"})
	if err != nil {
		log.Fatal(err)
	}
	defer console.Close()
	api.Handle("/ui/", console)

	// Without a session, a page sends the browser to the login form.
	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ui/log", nil))
	fmt.Println(w.Code, w.Header().Get("Location"))
	fmt.Println(w.Header().Get("Content-Security-Policy")[:20])
	// Output:
	// 303 /ui/login?next=%2Fui%2Flog
	// default-src 'none';
}
