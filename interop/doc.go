// Package interop holds conformance tests that check webhook-bridge's
// deliveries with other people's code: the built bridge binary delivers
// real events, over loopback HTTP, to receivers that verify them with the
// Standard Webhooks and Svix libraries for Go and for Node (npm
// standardwebhooks and svix) and read them with the CloudEvents Go SDK.
//
// It is a module of its own, so that the switchyard module gains none of
// these dependencies. The tests need go, redis-server, node and npm (npm
// installs the pinned packages of node/package.json into a temporary
// directory at the start of the run); scripts/test installs what is
// missing and runs them:
//
//	cd interop && go test -count=1 ./...
//
// The tests fail, never skip, when a tool is missing.
package interop
